import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.zookeeper.KeeperException;

/**
 * A Curator 5.x CuratorCache, and writes through Curator, driven over stdin/stdout for
 * zk-recipes' cache interop tests.
 *
 * <p>Usage: {@code CuratorCacheWorker <connectString> <cachePath>}
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code START}: builds and starts a CuratorCache on the path; {@code STARTED} once its
 *       listener was told it is initialized. Every event it is given afterwards is printed
 *       as {@code EVENT CREATED|CHANGED|DELETED <path> <mzxid> <hex data>}.</li>
 *   <li>{@code DUMP}: {@code DUMP <path>=<mzxid>:<hex data>;...}, the cache's contents sorted
 *       by path ({@code DUMP} alone when it is empty).</li>
 *   <li>{@code SET <path> <text>}: create-or-set with parents, Curator's
 *       {@code create().orSetData().creatingParentsIfNeeded()}; {@code SET <path>}.</li>
 *   <li>{@code DELETE <path>}: Curator's {@code delete().deletingChildrenIfNeeded()};
 *       {@code DELETED <path>} (also when there was nothing to delete).</li>
 *   <li>{@code RANDOM <seed> <n>}: n seeded random creates, sets and deletes under the path,
 *       up to 4 levels deep below it, each ignoring a node that is missing, present or not
 *       empty; {@code RANDOMIZED <n>}.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR - <message>}. {@code READY} is printed at start.
 */
public final class CuratorCacheWorker extends CuratorWorker {
    private final String connectString;
    private final String cachePath;
    private CuratorFramework client;
    private CuratorCache cache;

    private CuratorCacheWorker(String connectString, String cachePath) {
        this.connectString = connectString;
        this.cachePath = cachePath;
    }

    private static String hex(byte[] data) {
        if (data == null) {
            return "";
        }
        StringBuilder out = new StringBuilder();
        for (byte b : data) {
            out.append(String.format("%02x", b & 0xff));
        }
        return out.toString();
    }

    private static String describe(ChildData node) {
        return node.getPath() + " " + node.getStat().getMzxid() + " " + hex(node.getData());
    }

    private void start() throws InterruptedException {
        CountDownLatch initialized = new CountDownLatch(1);
        cache = CuratorCache.build(client, cachePath);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(node -> say("EVENT CREATED " + describe(node)))
                .forChanges((old, node) -> say("EVENT CHANGED " + describe(node)))
                .forDeletes(node -> say("EVENT DELETED " + describe(node)))
                .forInitialized(initialized::countDown)
                .build());
        cache.start();
        if (!initialized.await(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("the cache was not initialized within 30 s");
        }
        say("STARTED");
    }

    private String dump() {
        Map<String, ChildData> sorted = new TreeMap<>();
        cache.stream().forEach(node -> sorted.put(node.getPath(), node));
        StringBuilder out = new StringBuilder("DUMP");
        String separator = " ";
        for (ChildData node : sorted.values()) {
            out.append(separator).append(node.getPath()).append('=')
                    .append(node.getStat().getMzxid()).append(':').append(hex(node.getData()));
            separator = ";";
        }
        return out.toString();
    }

    /** The same kind of changes as the Rust tests' {@code random_changes}, through Curator. */
    private void randomChanges(long seed, int n) throws Exception {
        Random random = new Random(seed);
        for (int i = 0; i < n; i++) {
            int depth = 1 + random.nextInt(4);
            StringBuilder path = new StringBuilder(cachePath);
            for (int level = 0; level < depth; level++) {
                path.append("/n").append(random.nextInt(3));
            }
            byte[] data = ("j" + i).getBytes(StandardCharsets.UTF_8);
            try {
                switch (random.nextInt(3)) {
                    case 0:
                        client.create().forPath(path.toString(), data);
                        break;
                    case 1:
                        client.setData().forPath(path.toString(), data);
                        break;
                    default:
                        client.delete().forPath(path.toString());
                        break;
                }
            } catch (KeeperException.NoNodeException | KeeperException.NodeExistsException
                    | KeeperException.NotEmptyException expected) {
                // A random change may not apply to the tree as it is: skip it.
            }
        }
    }

    private void run() throws Exception {
        client = startClient(connectString, null);
        serve(client, connectString);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "START":
                start();
                return true;
            case "DUMP":
                say(dump());
                return true;
            case "SET":
                client.create().orSetData().creatingParentsIfNeeded()
                        .forPath(command[1], command[2].getBytes(StandardCharsets.UTF_8));
                say("SET " + command[1]);
                return true;
            case "DELETE":
                try {
                    client.delete().deletingChildrenIfNeeded().forPath(command[1]);
                } catch (KeeperException.NoNodeException gone) {
                    // Nothing to delete.
                }
                say("DELETED " + command[1]);
                return true;
            case "RANDOM":
                int n = Integer.parseInt(command[2]);
                randomChanges(Long.parseLong(command[1]), n);
                say("RANDOMIZED " + n);
                return true;
            default:
                return false;
        }
    }

    @Override
    void quit() {
        if (cache != null) {
            cache.close();
        }
        client.close();
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CuratorCacheWorker <connectString> <cachePath>");
            System.exit(2);
        }
        new CuratorCacheWorker(args[0], args[1]).run();
        System.exit(0);
    }
}
