// The plugins of tests/servers/elasticsearch's node, given as classes on the
// classpath instead of plugin folders with descriptors. In this package for
// PluginsService's package-private plugin loading.
package org.elasticsearch.plugins;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.elasticsearch.Version;
import org.elasticsearch.common.settings.Settings;

public final class AuditrailClasspathPlugins extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public AuditrailClasspathPlugins(
            Settings settings, Path configDir, Collection<Class<? extends Plugin>> classes) {
        super(settings, configDir, PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false));
        List<LoadedPlugin> plugins = new ArrayList<>();
        for (Class<? extends Plugin> plugin : classes) {
            PluginDescriptor descriptor = new PluginDescriptor(
                plugin.getName(), "on the classpath", "NA", Version.CURRENT.toString(), "17",
                plugin.getName(), null, List.of(), false, false, false, false);
            plugins.add(new LoadedPlugin(
                descriptor, loadPlugin(plugin, settings, configDir), plugin.getClassLoader()));
        }
        loadExtensions(plugins);
        loaded = List.copyOf(plugins);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }
}
