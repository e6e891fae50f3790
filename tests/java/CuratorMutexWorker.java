import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.Revoker;
import org.apache.zookeeper.KeeperException;

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
public final class CuratorMutexWorker extends CuratorWorker {
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

    /** One participant: a client, a lock, and the one thread that uses them. */
    private final class Slot extends CuratorWorker.Slot {
        final CuratorFramework client;
        final InterProcessMutex lock;

        Slot(String name) {
            super(name);
            this.client = startClient(connectString, (idPrefix + "-" + name).getBytes(StandardCharsets.UTF_8));
            // The lock node's data is the client's default data (InterProcessMutex passes no
            // bytes), except for a revocable lock: Curator then writes empty data.
            this.lock = new InterProcessMutex(client, lockPath);
            start();
        }

        @Override
        boolean handle(String[] command) throws Exception {
            switch (command[0]) {
                case "ACQUIRE":
                    lock.acquire();
                    say("ACQUIRED " + name + " " + ownNode(client, lockPath));
                    return true;
                case "REVOCABLE":
                    lock.makeRevocable(forLock -> say("REVOKE_REQUESTED " + name));
                    say("REVOCABLE " + name);
                    return true;
                case "RELEASE":
                    lock.release();
                    say("RELEASED " + name);
                    return true;
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
                    return true;
                default:
                    return false;
            }
        }
    }

    private Slot slot(String name) {
        return slots.computeIfAbsent(name, Slot::new);
    }

    private void run() throws Exception {
        admin = startClient(connectString, null);
        serve(admin, connectString);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "ACQUIRE":
            case "RELEASE":
            case "REVOCABLE":
            case "COUNT":
                slot(command[1]).commands.put(command);
                return true;
            case "PARTICIPANTS":
                say("PARTICIPANTS " + participants());
                return true;
            case "REVOKE":
                Revoker.attemptRevoke(admin, command[1]);
                say("REVOKE_SENT");
                return true;
            default:
                return false;
        }
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

    @Override
    void quit() {
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
