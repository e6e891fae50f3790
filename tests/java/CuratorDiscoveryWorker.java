import java.io.Closeable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.x.discovery.DownInstancePolicy;
import org.apache.curator.x.discovery.ProviderStrategy;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.details.InstanceSerializer;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.curator.x.discovery.strategies.RandomStrategy;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;
import org.apache.curator.x.discovery.strategies.StickyStrategy;

/**
 * Curator 5.4's service discovery ({@code curator-x-discovery}) driven over stdin/stdout, for
 * zk-recipes' service discovery interop tests.
 *
 * <p>Usage: {@code CuratorDiscoveryWorker <connectString> <basePath>}
 *
 * <p>The worker has two clients, so two sessions. The <em>registrar</em> client holds the
 * registrations: a started {@code ServiceDiscovery<String>} (payload class String) and a started
 * {@code ServiceDiscovery<Map>} (payload class Map), both on the base path with
 * {@code JsonInstanceSerializer}s of their payload class. The <em>reader</em> client holds the
 * same two kinds of discovery, used for queries, service caches and service providers.
 * {@code READY} is printed once both clients are connected. Every command runs on the main
 * loop, one at a time. A String payload is the rest of the command line (words joined by single
 * spaces, empty if there is none). An instance list is the instances sorted by id, each as the
 * UTF-8 text of its payload class's {@code JsonInstanceSerializer} (compact JSON, so without raw
 * tabs), each preceded by a TAB.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code REGISTER <name> <id> <address> <port> <payload>}: registers, with the String
 *       discovery, {@code ServiceInstance.<String>builder().name().id().address().port().payload()}
 *       (a DYNAMIC instance registered now); {@code REGISTERED <id>}.</li>
 *   <li>{@code REGISTER_MAP <name> <id> <address> <port> <k1=v1,k2=v2>}: the same with the Map
 *       discovery, the payload a {@code LinkedHashMap<String, String>} in the order given
 *       (empty if the argument is missing; a pair without {@code =} has an empty value);
 *       {@code REGISTERED <id>}.</li>
 *   <li>{@code UPDATE <name> <id> <address> <port> <payload>}: the String discovery's
 *       {@code updateService} with a new instance, whose registration time is the registered
 *       instance's (read with the registrar's {@code queryForInstance}; now if there is none);
 *       {@code UPDATED <id>}.</li>
 *   <li>{@code UNREGISTER <name> <id>}: {@code unregisterService} of an instance with that name
 *       and id, on both registrar discoveries (a discovery that did not register the id does
 *       nothing); {@code UNREGISTERED <id>}.</li>
 *   <li>{@code QUERY <name>}: the reader's String discovery's {@code queryForInstances(name)};
 *       {@code INSTANCES <n>} followed by the instance list.</li>
 *   <li>{@code QUERY_MAP <name>}: the same with the reader's Map discovery;
 *       {@code INSTANCES <n>} followed by the instance list.</li>
 *   <li>{@code CACHE <name>}: a started service cache of the reader's String discovery, whose
 *       listener prints {@code CACHE_CHANGED <name> <ids>} (the cache's instance ids, sorted and
 *       comma-separated, or {@code -} when it is empty) at each {@code cacheChanged} (from a
 *       Curator thread, at any time); {@code CACHED <name>} once its initial load is done.</li>
 *   <li>{@code CACHE_DUMP <name>}: that cache's {@code getInstances()};
 *       {@code CACHE_INSTANCES <n>} followed by the instance list.</li>
 *   <li>{@code PROVIDER <name> <roundrobin|random|sticky>}: a started service provider of the
 *       reader's String discovery with that strategy (sticky: {@code StickyStrategy} over
 *       {@code RoundRobinStrategy}) and {@code DownInstancePolicy(30 s, 2 errors)};
 *       {@code PROVIDER_READY <name>}.</li>
 *   <li>{@code PICK <name> <k>}: k calls of the provider's {@code getInstance()};
 *       {@code PICKED <id>,<id>,...}, {@code -} standing for a null instance ({@code PICKED}
 *       alone when k is 0).</li>
 *   <li>{@code NOTE_ERROR <name> <id>}: the provider's {@code noteError} for the instance with
 *       that id, found among the provider's {@code getAllInstances()}, else in the cache of that
 *       name, else with the reader's {@code queryForInstance}; {@code NOTED <id>}.</li>
 *   <li>{@code CRASH}: closes only the registrar client, not its discoveries (its session ends,
 *       so its ephemeral instances go without an explicit delete); {@code CRASHED}.</li>
 *   <li>{@code QUIT}: closes the providers, caches, discoveries (the registrar's unless it
 *       crashed) and clients; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR - <message>}.
 */
@SuppressWarnings({"rawtypes", "unchecked"})
public final class CuratorDiscoveryWorker extends CuratorWorker {
    private final String connectString;
    private final String basePath;
    private final InstanceSerializer<String> stringSerializer = new JsonInstanceSerializer<>(String.class);
    private final InstanceSerializer<Map> mapSerializer = new JsonInstanceSerializer<>(Map.class);
    private final Map<String, ServiceCache<String>> caches = new LinkedHashMap<>();
    private final Map<String, ServiceProvider<String>> providers = new LinkedHashMap<>();
    private CuratorFramework registrar;
    private CuratorFramework reader;
    private ServiceDiscovery<String> registrarStrings;
    private ServiceDiscovery<Map> registrarMaps;
    private ServiceDiscovery<String> readerStrings;
    private ServiceDiscovery<Map> readerMaps;
    private boolean crashed;

    private CuratorDiscoveryWorker(String connectString, String basePath) {
        this.connectString = connectString;
        this.basePath = basePath;
    }

    private <T> ServiceDiscovery<T> discovery(CuratorFramework client, Class<T> payloadClass) throws Exception {
        ServiceDiscovery<T> discovery = ServiceDiscoveryBuilder.builder(payloadClass)
                .client(client)
                .basePath(basePath)
                .serializer(new JsonInstanceSerializer<>(payloadClass))
                .build();
        discovery.start();
        return discovery;
    }

    private void run() throws Exception {
        registrar = startClient(connectString, null);
        reader = startClient(connectString, null);
        if (!registrar.blockUntilConnected(30, TimeUnit.SECONDS)) {
            say("ERROR - could not connect to " + connectString);
            reader.close();
            registrar.close();
            return;
        }
        registrarStrings = discovery(registrar, String.class);
        registrarMaps = discovery(registrar, Map.class);
        readerStrings = discovery(reader, String.class);
        readerMaps = discovery(reader, Map.class);
        serve(reader, connectString);
    }

    /** Argument {@code index} of {@code command}, which must have it. */
    private static String arg(String[] command, int index, String what) {
        if (command.length <= index) {
            throw new IllegalArgumentException(command[0] + " needs " + what);
        }
        return command[index];
    }

    /** The words of {@code command} from {@code from} on, joined by single spaces. */
    private static String rest(String[] command, int from) {
        return command.length > from ? String.join(" ", Arrays.copyOfRange(command, from, command.length)) : "";
    }

    private static ServiceInstance<String> stringInstance(String[] command, long registrationTime) throws Exception {
        return ServiceInstance.<String>builder()
                .name(arg(command, 1, "a name"))
                .id(arg(command, 2, "an id"))
                .address(arg(command, 3, "an address"))
                .port(Integer.parseInt(arg(command, 4, "a port")))
                .payload(rest(command, 5))
                .registrationTimeUTC(registrationTime)
                .build();
    }

    private static Map<String, String> mapPayload(String text) {
        Map<String, String> payload = new LinkedHashMap<>();
        if (text.isEmpty()) {
            return payload;
        }
        for (String pair : text.split(",", -1)) {
            int equals = pair.indexOf('=');
            if (equals < 0) {
                payload.put(pair, "");
            } else {
                payload.put(pair.substring(0, equals), pair.substring(equals + 1));
            }
        }
        return payload;
    }

    private static <T> List<ServiceInstance<T>> sortedById(Collection<ServiceInstance<T>> instances) {
        List<ServiceInstance<T>> sorted = new ArrayList<>(instances);
        sorted.sort(Comparator.comparing(ServiceInstance::getId));
        return sorted;
    }

    /** {@code <tag> <n>}, then a TAB and the JSON of each instance, sorted by id. */
    private static <T> String instanceList(String tag, Collection<ServiceInstance<T>> instances,
            InstanceSerializer<T> serializer) throws Exception {
        List<ServiceInstance<T>> sorted = sortedById(instances);
        StringBuilder out = new StringBuilder(tag).append(' ').append(sorted.size());
        for (ServiceInstance<T> instance : sorted) {
            out.append('\t').append(new String(serializer.serialize(instance), StandardCharsets.UTF_8));
        }
        return out.toString();
    }

    /** The ids of {@code instances}, sorted and comma-separated, or "-" when there are none. */
    private static String ids(Collection<ServiceInstance<String>> instances) {
        List<String> ids = new ArrayList<>();
        for (ServiceInstance<String> instance : sortedById(instances)) {
            ids.add(instance.getId());
        }
        return ids.isEmpty() ? "-" : String.join(",", ids);
    }

    private ServiceCache<String> cache(String name) {
        ServiceCache<String> cache = caches.get(name);
        if (cache == null) {
            throw new IllegalStateException("no cache for " + name);
        }
        return cache;
    }

    private ServiceProvider<String> provider(String name) {
        ServiceProvider<String> provider = providers.get(name);
        if (provider == null) {
            throw new IllegalStateException("no provider for " + name);
        }
        return provider;
    }

    private void startCache(String name) throws Exception {
        if (caches.containsKey(name)) {
            throw new IllegalStateException("there is already a cache for " + name);
        }
        ServiceCache<String> cache = readerStrings.serviceCacheBuilder().name(name).build();
        cache.addListener(new ServiceCacheListener() {
            @Override
            public void cacheChanged() {
                say("CACHE_CHANGED " + name + " " + ids(cache.getInstances()));
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState newState) {
                // Connection states are not part of the protocol.
            }
        });
        try {
            cache.start();
        } catch (Exception e) {
            closeQuietly(cache);
            throw e;
        }
        caches.put(name, cache);
    }

    private static ProviderStrategy<String> strategy(String name) {
        switch (name) {
            case "roundrobin":
                return new RoundRobinStrategy<>();
            case "random":
                return new RandomStrategy<>();
            case "sticky":
                return new StickyStrategy<>(new RoundRobinStrategy<>());
            default:
                throw new IllegalArgumentException("unknown strategy " + name);
        }
    }

    private void startProvider(String name, String strategy) throws Exception {
        if (providers.containsKey(name)) {
            throw new IllegalStateException("there is already a provider for " + name);
        }
        ServiceProvider<String> provider = readerStrings.serviceProviderBuilder()
                .serviceName(name)
                .providerStrategy(strategy(strategy))
                .downInstancePolicy(new DownInstancePolicy(30, TimeUnit.SECONDS, 2))
                .build();
        try {
            provider.start();
        } catch (Exception e) {
            closeQuietly(provider);
            throw e;
        }
        providers.put(name, provider);
    }

    private String pick(String name, int k) throws Exception {
        ServiceProvider<String> provider = provider(name);
        List<String> picked = new ArrayList<>();
        for (int i = 0; i < k; i++) {
            ServiceInstance<String> instance = provider.getInstance();
            picked.add(instance == null ? "-" : instance.getId());
        }
        return picked.isEmpty() ? "PICKED" : "PICKED " + String.join(",", picked);
    }

    private static ServiceInstance<String> withId(Collection<ServiceInstance<String>> instances, String id) {
        for (ServiceInstance<String> instance : instances) {
            if (id.equals(instance.getId())) {
                return instance;
            }
        }
        return null;
    }

    private void noteError(String name, String id) throws Exception {
        ServiceProvider<String> provider = provider(name);
        ServiceInstance<String> instance = withId(provider.getAllInstances(), id);
        if (instance == null && caches.containsKey(name)) {
            instance = withId(caches.get(name).getInstances(), id);
        }
        if (instance == null) {
            instance = readerStrings.queryForInstance(name, id);
        }
        if (instance == null) {
            throw new IllegalStateException("no instance " + id + " of " + name);
        }
        provider.noteError(instance);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "REGISTER": {
                ServiceInstance<String> instance = stringInstance(command, System.currentTimeMillis());
                registrarStrings.registerService(instance);
                say("REGISTERED " + instance.getId());
                return true;
            }
            case "REGISTER_MAP": {
                Map payload = mapPayload(rest(command, 5));
                ServiceInstance<Map> instance = ServiceInstance.<Map>builder()
                        .name(arg(command, 1, "a name"))
                        .id(arg(command, 2, "an id"))
                        .address(arg(command, 3, "an address"))
                        .port(Integer.parseInt(arg(command, 4, "a port")))
                        .payload(payload)
                        .build();
                registrarMaps.registerService(instance);
                say("REGISTERED " + instance.getId());
                return true;
            }
            case "UPDATE": {
                ServiceInstance<String> registered = registrarStrings.queryForInstance(
                        arg(command, 1, "a name"), arg(command, 2, "an id"));
                long time = registered != null ? registered.getRegistrationTimeUTC() : System.currentTimeMillis();
                ServiceInstance<String> instance = stringInstance(command, time);
                registrarStrings.updateService(instance);
                say("UPDATED " + instance.getId());
                return true;
            }
            case "UNREGISTER": {
                String name = arg(command, 1, "a name");
                String id = arg(command, 2, "an id");
                registrarStrings.unregisterService(ServiceInstance.<String>builder().name(name).id(id).build());
                registrarMaps.unregisterService(ServiceInstance.<Map>builder().name(name).id(id).build());
                say("UNREGISTERED " + id);
                return true;
            }
            case "QUERY": {
                String name = arg(command, 1, "a name");
                say(instanceList("INSTANCES", readerStrings.queryForInstances(name), stringSerializer));
                return true;
            }
            case "QUERY_MAP": {
                String name = arg(command, 1, "a name");
                say(instanceList("INSTANCES", readerMaps.queryForInstances(name), mapSerializer));
                return true;
            }
            case "CACHE": {
                String name = arg(command, 1, "a name");
                startCache(name);
                say("CACHED " + name);
                return true;
            }
            case "CACHE_DUMP": {
                String name = arg(command, 1, "a name");
                say(instanceList("CACHE_INSTANCES", cache(name).getInstances(), stringSerializer));
                return true;
            }
            case "PROVIDER": {
                String name = arg(command, 1, "a name");
                startProvider(name, arg(command, 2, "a strategy"));
                say("PROVIDER_READY " + name);
                return true;
            }
            case "PICK": {
                String name = arg(command, 1, "a name");
                say(pick(name, Integer.parseInt(arg(command, 2, "a count"))));
                return true;
            }
            case "NOTE_ERROR": {
                String id = arg(command, 2, "an id");
                noteError(arg(command, 1, "a name"), id);
                say("NOTED " + id);
                return true;
            }
            case "CRASH": {
                crashed = true;
                registrar.close();
                say("CRASHED");
                return true;
            }
            default:
                return false;
        }
    }

    /** Closes {@code closeable}, ignoring what it throws (its client may be closed already). */
    private static void closeQuietly(Closeable closeable) {
        if (closeable == null) {
            return;
        }
        try {
            closeable.close();
        } catch (Exception e) {
            // Nothing more to undo.
        }
    }

    @Override
    void quit() {
        for (ServiceProvider<String> provider : providers.values()) {
            closeQuietly(provider);
        }
        providers.clear();
        for (ServiceCache<String> cache : caches.values()) {
            closeQuietly(cache);
        }
        caches.clear();
        closeQuietly(readerStrings);
        closeQuietly(readerMaps);
        if (!crashed) {
            closeQuietly(registrarStrings);
            closeQuietly(registrarMaps);
        }
        reader.close();
        registrar.close();
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CuratorDiscoveryWorker <connectString> <basePath>");
            System.exit(2);
        }
        new CuratorDiscoveryWorker(args[0], args[1]).run();
        System.exit(0);
    }
}
