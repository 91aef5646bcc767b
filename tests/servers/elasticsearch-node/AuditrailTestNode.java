// A single Elasticsearch node started from the classpath, for auditrail's
// black-box tests (tests/servers/elasticsearch compiles and runs it).
//
// Elasticsearch's launcher refuses root and wants an unpacked distribution;
// CI runs as root with only Maven artifacts. Node's classpath-plugin hook is
// package-private, hence this package. The test framework's MockNode cannot
// be used: it needs a randomized-testing context and refuses root too.
//
// Arguments: KEY=VALUE node settings (path.home is required).
// SIGTERM closes the node cleanly.
package org.elasticsearch.node;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.AuditrailClasspathPlugins;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

public final class AuditrailTestNode extends Node {
    private static final List<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class);

    private AuditrailTestNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
        super(NodeConstruction.prepareConstruction(
            environment,
            PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false),
            new NodeServiceProvider() {
                @Override
                PluginsService newPluginService(Environment env, PluginsLoader loader) {
                    return new AuditrailClasspathPlugins(env.settings(), env.configDir(), plugins);
                }
            },
            true));
    }

    public static void main(String[] args) throws Exception {
        LogConfigurator.loadLog4jPlugins();
        LogConfigurator.configureESLogging();
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("AuditrailTestNode: expected KEY=VALUE, got `" + arg + "`");
                System.exit(2);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings.build(), Map.of(), null, () -> "auditrail-test");
        AuditrailTestNode node = new AuditrailTestNode(environment, PLUGINS);
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
        System.out.println("AuditrailTestNode: started");
        System.out.flush();
        closed.await();
    }
}
