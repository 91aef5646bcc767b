# Shared by tests/servers/opensearch and tests/servers/elasticsearch (sourced,
# not run): arguments, the Java and Maven check, the one-time fetch and
# compile into the cache, the node's log config, and the exec of the JVM.
#
# The caller sets `product` (opensearch|elasticsearch), `version`, `heap`,
# `node_src` (a folder with pom.xml and the launcher's *.java) and
# `main_class`, then calls `node_main "$@"` with `defaults` (an array of
# KEY=VALUE node settings that --setting may add to or override).

usage() {
    echo "usage: $0 --port PORT --dir DIR [--setting KEY=VALUE]..." >&2
    exit 2
}

node_main() {
    local port="" dir="" settings=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --port) [ $# -ge 2 ] || usage; port="$2"; shift 2 ;;
            --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
            --setting) [ $# -ge 2 ] || usage; settings+=("$2"); shift 2 ;;
            -h|--help) usage ;;
            *) echo "$0: unknown argument \`$1\`" >&2; usage ;;
        esac
    done
    [ -n "$port" ] && [ -n "$dir" ] || usage

    local java javac
    if [ -n "${JAVA_HOME:-}" ]; then
        java="$JAVA_HOME/bin/java"
        javac="$JAVA_HOME/bin/javac"
    else
        java="$(command -v java || true)"
        javac="$(command -v javac || true)"
    fi
    local missing=()
    [ -x "$java" ] || missing+=("java")
    [ -x "$javac" ] || missing+=("javac")
    command -v mvn >/dev/null 2>&1 || missing+=("mvn")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$0: needs ${missing[*]} (a JDK 17 and Maven; on Debian: apt-get install openjdk-17-jdk-headless maven)" >&2
        exit 127
    fi

    local root="${AUDITRAIL_TEST_CACHE:-$HOME/.cache/auditrail-test-servers}"
    local cache="$root/$product-$version"
    local lib="$cache/lib"
    local sources=("$node_src"/*.java)
    local sum
    sum="$(cat "$node_src/pom.xml" "${sources[@]}" | sha256sum | cut -c1-16)"
    local classes="$cache/launcher-$sum"
    mkdir -p "$cache"
    # One fetch and one compile at a time, however many nodes of either
    # product start at once (Maven's local repository is shared too).
    exec 9>"$root/.lock"
    flock 9
    if [ ! -f "$lib/.complete" ]; then
        echo "$product $version: fetching jars into $lib (first run only)" >&2
        rm -rf "$lib"
        # Quiet Maven still prints colour resets; strip them (pipefail keeps its status).
        mvn -q -B -Dstyle.color=never -f "$node_src/pom.xml" "-D$product.version=$version" \
            dependency:copy-dependencies "-DoutputDirectory=$lib" 2>&1 |
            sed 's/\x1b\[[0-9;]*m//g' >&2
        touch "$lib/.complete"
    fi
    if [ ! -f "$classes/.complete" ]; then
        rm -rf "$classes.tmp"
        mkdir -p "$classes.tmp"
        "$javac" -nowarn -cp "$lib/*" -d "$classes.tmp" "${sources[@]}" >&2
        touch "$classes.tmp/.complete"
        rm -rf "$classes"
        mv "$classes.tmp" "$classes"
    fi
    exec 9>&-

    mkdir -p "$dir/config" "$dir/data" "$dir/logs" "$dir/tmp"
    dir="$(cd "$dir" && pwd)"
    local log="$dir/logs/$product.log"
    cat > "$dir/config/log4j2-test-node.properties" <<LOG4J
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
LOG4J

    echo "$product $version: http://127.0.0.1:$port, data in $dir/data, log in $log" >&2

    exec "$java" -Xms"$heap" -Xmx"$heap" -XX:+UseSerialGC -Xss1m \
        -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
        -Djava.io.tmpdir="$dir/tmp" \
        -Dlog4j2.configurationFile="$dir/config/log4j2-test-node.properties" \
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
        -Dio.netty.recycler.maxCapacityPerThread=0 \
        -cp "$classes:$lib/*" "$main_class" \
        "path.home=$dir" "path.data=$dir/data" "path.logs=$dir/logs" \
        "cluster.name=auditrail-test" "node.name=auditrail-test" \
        "discovery.type=single-node" \
        "network.host=127.0.0.1" "http.port=$port" \
        "http.type=netty4" "transport.type=netty4" \
        "cluster.routing.allocation.disk.threshold_enabled=false" \
        "${defaults[@]}" "${settings[@]}"
}
