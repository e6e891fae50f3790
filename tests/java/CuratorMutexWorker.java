import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.Revoker;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

/**
 * A Curator 5.x InterProcessMutex driven over stdin/stdout, for zk-recipes' interop tests.
 *
 * <p>Usage: {@code CuratorMutexWorker <connectString> <lockPath> <idPrefix> [counterPath]}
 *
 * <p>Each <em>slot</em> is a separate participant: its own CuratorFramework (so its own
 * session) and its own InterProcessMutex, whose lock node data is {@code <idPrefix>-<slot>}.
 * A slot's lock is used by one thread of its own, so Curator's per-thread reentrancy never
 * mixes two slots.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code ACQUIRE <slot>}: the slot's thread acquires (blocking);
 *       {@code ACQUIRED <slot> <fullNodePath>} once granted.</li>
 *   <li>{@code RELEASE <slot>}: the slot's thread releases; {@code RELEASED <slot>}.</li>
 *   <li>{@code REVOCABLE <slot>}: makes the slot's lock revocable (Curator then writes empty
 *       lock node data); {@code REVOCABLE <slot>}, and later {@code REVOKE_REQUESTED <slot>}
 *       when its held node is revoked.</li>
 *   <li>{@code COUNT <slot> <n>}: n times: acquire, read the counter, write it + 1 (no
 *       version), release; {@code COUNTED <slot> <n>}.</li>
 *   <li>{@code PARTICIPANTS}: {@code PARTICIPANTS <id>,<id>,...} in queue order, the data of
 *       each lock node as Curator sees it.</li>
 *   <li>{@code REVOKE <fullNodePath>}: Curator's Revoker.attemptRevoke; {@code REVOKE_SENT}.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR <slot> <message>}. {@code READY} is printed at start.
 */
public final class CuratorMutexWorker {
    private static final Object OUT = new Object();

    private static void say(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    private final String connectString;
    private final String lockPath;
    private final String idPrefix;
    private final String counterPath;
    private final Map<String, Slot> slots = new ConcurrentHashMap<>();
    private CuratorFramework admin;

    private CuratorMutexWorker(String connectString, String lockPath, String idPrefix, String counterPath) {
        this.connectString = connectString;
        this.lockPath = lockPath;
        this.idPrefix = idPrefix;
        this.counterPath = counterPath;
    }

    private CuratorFramework newClient(byte[] defaultData) {
        CuratorFrameworkFactory.Builder builder = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(5000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10));
        if (defaultData != null) {
            builder = builder.defaultData(defaultData);
        }
        CuratorFramework client = builder.build();
        client.start();
        return client;
    }

    /** One participant: a client, a lock, and the one thread that uses them. */
    private final class Slot implements Runnable {
        final String name;
        final CuratorFramework client;
        final InterProcessMutex lock;
        final LinkedBlockingQueue<String[]> commands = new LinkedBlockingQueue<>();
        final Thread thread;

        Slot(String name) {
            this.name = name;
            this.client = newClient((idPrefix + "-" + name).getBytes(StandardCharsets.UTF_8));
            // The lock node's data is the client's default data (InterProcessMutex passes no
            // bytes), except for a revocable lock: Curator then writes empty data.
            this.lock = new InterProcessMutex(client, lockPath);
            this.thread = new Thread(this, "slot-" + name);
            this.thread.setDaemon(true);
            this.thread.start();
        }

        @Override
        public void run() {
            while (true) {
                String[] command;
                try {
                    command = commands.take();
                } catch (InterruptedException e) {
                    return;
                }
                try {
                    switch (command[0]) {
                        case "ACQUIRE":
                            lock.acquire();
                            say("ACQUIRED " + name + " " + ownNode());
                            break;
                        case "REVOCABLE":
                            lock.makeRevocable(forLock -> say("REVOKE_REQUESTED " + name));
                            say("REVOCABLE " + name);
                            break;
                        case "RELEASE":
                            lock.release();
                            say("RELEASED " + name);
                            break;
                        case "COUNT":
                            int n = Integer.parseInt(command[2]);
                            for (int i = 0; i < n; i++) {
                                lock.acquire();
                                try {
                                    byte[] data = client.getData().forPath(counterPath);
                                    long value = Long.parseLong(new String(data, StandardCharsets.UTF_8).trim());
                                    client.setData().forPath(counterPath,
                                            Long.toString(value + 1).getBytes(StandardCharsets.UTF_8));
                                } finally {
                                    lock.release();
                                }
                            }
                            say("COUNTED " + name + " " + n);
                            break;
                        case "STOP":
                            return;
                        default:
                            say("ERROR " + name + " unknown slot command " + command[0]);
                    }
                } catch (Exception e) {
                    say("ERROR " + name + " " + e.toString().replace('\n', ' '));
                }
            }
        }

        /** The node this slot's session owns under the lock path. */
        private String ownNode() throws Exception {
            long session = client.getZookeeperClient().getZooKeeper().getSessionId();
            for (String child : client.getChildren().forPath(lockPath)) {
                String path = lockPath + "/" + child;
                Stat stat = client.checkExists().forPath(path);
                if (stat != null && stat.getEphemeralOwner() == session) {
                    return path;
                }
            }
            return "?";
        }
    }

    private Slot slot(String name) {
        return slots.computeIfAbsent(name, Slot::new);
    }

    private void run() throws Exception {
        admin = newClient(null);
        if (!admin.blockUntilConnected(30, TimeUnit.SECONDS)) {
            say("ERROR - could not connect to " + connectString);
            return;
        }
        say("READY");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] command = line.trim().split("\\s+");
            if (command.length == 0 || command[0].isEmpty()) {
                continue;
            }
            try {
                switch (command[0]) {
                    case "ACQUIRE":
                    case "RELEASE":
                    case "REVOCABLE":
                        slot(command[1]).commands.put(command);
                        break;
                    case "COUNT":
                        slot(command[1]).commands.put(command);
                        break;
                    case "PARTICIPANTS":
                        say("PARTICIPANTS " + participants());
                        break;
                    case "REVOKE":
                        Revoker.attemptRevoke(admin, command[1]);
                        say("REVOKE_SENT");
                        break;
                    case "QUIT":
                        quit();
                        return;
                    default:
                        say("ERROR - unknown command " + command[0]);
                }
            } catch (Exception e) {
                say("ERROR - " + e.toString().replace('\n', ' '));
            }
        }
        quit();
    }

    /** The participant ids in queue order, through Curator's own view of the lock. */
    private String participants() throws Exception {
        InterProcessMutex view = new InterProcessMutex(admin, lockPath);
        Collection<String> nodes = view.getParticipantNodes();
        List<String> ids = new ArrayList<>();
        for (String node : nodes) {
            try {
                ids.add(new String(admin.getData().forPath(node), StandardCharsets.UTF_8));
            } catch (KeeperException.NoNodeException gone) {
                // Left the queue between the listing and the read.
            }
        }
        return String.join(",", ids);
    }

    private void quit() {
        for (Slot slot : slots.values()) {
            slot.thread.interrupt();
            slot.client.close();
        }
        admin.close();
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: CuratorMutexWorker <connectString> <lockPath> <idPrefix> [counterPath]");
            System.exit(2);
        }
        new CuratorMutexWorker(args[0], args[1], args[2], args.length > 3 ? args[3] : "/unused").run();
        System.exit(0);
    }
}
