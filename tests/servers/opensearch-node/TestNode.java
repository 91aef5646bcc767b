// A single OpenSearch node started from the classpath, for auditrail's
// black-box tests (tests/servers/opensearch compiles and runs it).
//
// OpenSearch's own launcher refuses to run as root and wants an unpacked
// distribution; CI runs as root with only Maven artifacts. So this does what
// OpenSearch's test framework does: subclass Node to pass the plugin classes
// (Netty4 for HTTP, ingest-common for pipelines) directly, with no plugin
// directories, no security manager and no bootstrap checks.
//
// Arguments: KEY=VALUE node settings (path.home is required).
// SIGTERM closes the node cleanly.

import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.ingest.common.IngestCommonPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class TestNode extends Node {
    private static final List<Class<? extends Plugin>> PLUGINS =
        List.of(Netty4Plugin.class, IngestCommonPlugin.class);

    private TestNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
        super(environment, plugins, true);
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("TestNode: expected KEY=VALUE, got `" + arg + "`");
                System.exit(2);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings.build(), Collections.emptyMap(), null, () -> "auditrail-test");
        TestNode node = new TestNode(environment, PLUGINS);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "test-node-shutdown"));
        node.start();
        System.out.println("TestNode: started");
        System.out.flush();
        closed.await();
    }
}
