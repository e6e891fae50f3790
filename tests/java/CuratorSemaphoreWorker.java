import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

/**
 * A Curator 5.x InterProcessSemaphoreV2 driven over stdin/stdout, for zk-recipes' interop
 * tests.
 *
 * <p>Usage: {@code CuratorSemaphoreWorker <connectString> <semaphorePath> <maxLeases> <idPrefix> [insidePath]}
 *
 * <p>Every participant has a CuratorFramework (so a session) and an InterProcessSemaphoreV2
 * of its own, whose lease node data is its id. A <em>slot</em> is a participant driven one
 * command at a time, on a thread of its own, with id {@code <idPrefix>-<slot>}; it holds at
 * most one lease. The churners of {@code CHURN} are participants too, with ids
 * {@code <idPrefix>-<i>}.
 *
 * <p>The checker, under {@code insidePath} (created by the test): a churner, once granted a
 * lease, creates the ephemeral marker {@code <insidePath>/<idPrefix>-<i>-<k>}, lists
 * {@code insidePath}, works 5 to 15 ms, deletes its marker, and only then closes its lease.
 * A listing of more than maxLeases markers means more holders than leases.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code ACQUIRE <slot>}: the slot's thread acquires a lease (blocking);
 *       {@code ACQUIRED <slot> <leaseNodeName>} once granted (the name under
 *       {@code <semaphorePath>/leases}).</li>
 *   <li>{@code TRY_ACQUIRE <slot> <ms>}: the same, waiting at most ms; {@code ACQUIRED ...},
 *       or {@code ACQUIRE_TIMEOUT <slot>} (both start with {@code ACQUIRE}).</li>
 *   <li>{@code RELEASE <slot>}: closes the slot's lease; {@code RELEASED <slot>}.</li>
 *   <li>{@code MUTEX_TRY <slot> <ms>}: the slot's Curator {@code InterProcessSemaphoreMutex} on
 *       the same path (made on first use) acquires, waiting at most ms;
 *       {@code MUTEX_ACQUIRED <slot>} or {@code MUTEX_TIMEOUT <slot>}.</li>
 *   <li>{@code MUTEX_RELEASE <slot>}: releases it; {@code MUTEX_RELEASED <slot>}.</li>
 *   <li>{@code CHURN <threads> <n>}: that many churner threads, each n times: acquire, check
 *       as above, release. A listing of more than maxLeases markers is printed at once,
 *       {@code VIOLATION <churner> <count> <markers>}. When all are done,
 *       {@code CHURNED <acquisitions> <maxSeen> <violations> <mixed>}: leases granted, the
 *       most markers one listing saw, listings over the limit, and listings that saw a marker
 *       of a holder outside this worker (not starting with {@code <idPrefix>-}).</li>
 *   <li>{@code PARTICIPANTS}: {@code PARTICIPANTS <id>,<id>,...}, the data of every lease
 *       node, in sequence order, as Curator's getParticipantNodes sees them.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR <who> <message>}. {@code READY} is printed at start.
 */
public final class CuratorSemaphoreWorker extends CuratorWorker {
    private final String connectString;
    private final String semaphorePath;
    private final int maxLeases;
    private final String idPrefix;
    private final String insidePath;
    private final Map<String, Slot> slots = new ConcurrentHashMap<>();
    private final List<CuratorFramework> clients = new ArrayList<>();
    private CuratorFramework admin;

    private final AtomicLong acquisitions = new AtomicLong();
    private final AtomicLong maxSeen = new AtomicLong();
    private final AtomicLong violations = new AtomicLong();
    private final AtomicLong mixed = new AtomicLong();

    private CuratorSemaphoreWorker(String connectString, String semaphorePath, int maxLeases, String idPrefix,
            String insidePath) {
        this.connectString = connectString;
        this.semaphorePath = semaphorePath;
        this.maxLeases = maxLeases;
        this.idPrefix = idPrefix;
        this.insidePath = insidePath;
    }

    /** A started client, closed by {@link #quit}. */
    private CuratorFramework newClient() {
        CuratorFramework client = startClient(connectString, null);
        synchronized (clients) {
            clients.add(client);
        }
        return client;
    }

    private InterProcessSemaphoreV2 newSemaphore(CuratorFramework client, String id) {
        InterProcessSemaphoreV2 semaphore = new InterProcessSemaphoreV2(client, semaphorePath, maxLeases);
        semaphore.setNodeData(id.getBytes(StandardCharsets.UTF_8));
        return semaphore;
    }

    /** One participant driven by commands: a client, a semaphore, and the thread that uses them. */
    private final class Slot extends CuratorWorker.Slot {
        final InterProcessSemaphoreV2 semaphore;
        /** The lease this slot holds, or null. */
        Lease held;
        /** The slot's InterProcessSemaphoreMutex, made on first use. */
        InterProcessSemaphoreMutex mutex;

        Slot(String name) {
            super(name);
            this.semaphore = newSemaphore(newClient(), idPrefix + "-" + name);
            start();
        }

        @Override
        boolean handle(String[] command) throws Exception {
            switch (command[0]) {
                case "ACQUIRE":
                    acquire(-1);
                    return true;
                case "TRY_ACQUIRE":
                    acquire(Long.parseLong(command[2]));
                    return true;
                case "MUTEX_TRY":
                    if (mutex == null) {
                        mutex = new InterProcessSemaphoreMutex(newClient(), semaphorePath);
                    }
                    boolean acquired = mutex.acquire(Long.parseLong(command[2]), TimeUnit.MILLISECONDS);
                    say((acquired ? "MUTEX_ACQUIRED " : "MUTEX_TIMEOUT ") + name);
                    return true;
                case "MUTEX_RELEASE":
                    mutex.release();
                    say("MUTEX_RELEASED " + name);
                    return true;
                case "RELEASE":
                    if (held == null) {
                        say("ERROR " + name + " RELEASE without a lease");
                        return true;
                    }
                    held.close();
                    held = null;
                    say("RELEASED " + name);
                    return true;
                default:
                    return false;
            }
        }

        /** Acquires a lease, waiting at most `timeoutMs` (forever if negative), and says so. */
        private void acquire(long timeoutMs) throws Exception {
            if (held != null) {
                say("ERROR " + name + " already holds a lease");
                return;
            }
            Lease lease = timeoutMs < 0
                    ? semaphore.acquire()
                    : semaphore.acquire(timeoutMs, TimeUnit.MILLISECONDS);
            if (lease == null) {
                say("ACQUIRE_TIMEOUT " + name);
            } else {
                held = lease;
                // Curator's Lease.getNodeName is the lease node's name, not its path.
                say("ACQUIRED " + name + " " + lease.getNodeName());
            }
        }
    }

    private Slot slot(String name) {
        return slots.computeIfAbsent(name, Slot::new);
    }

    /** Starts `threads` churners of `n` leases each, and a thread that reports when all are done. */
    private void startChurn(int threads, int n) {
        List<Thread> churners = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            String id = idPrefix + "-" + i;
            Thread churner = new Thread(() -> {
                try {
                    CuratorFramework client = newClient();
                    InterProcessSemaphoreV2 semaphore = newSemaphore(client, id);
                    for (int k = 0; k < n; k++) {
                        Lease lease = semaphore.acquire();
                        try {
                            acquisitions.incrementAndGet();
                            inside(client, id + "-" + k);
                        } finally {
                            lease.close();
                        }
                    }
                } catch (Exception e) {
                    say("ERROR " + id + " " + oneLine(e));
                }
            }, id);
            churner.setDaemon(true);
            churner.start();
            churners.add(churner);
        }
        whenAllEnd(churners, "churn-done", () -> say(
                "CHURNED " + acquisitions.get() + " " + maxSeen.get() + " " + violations.get() + " " + mixed.get()));
    }

    /** A holder's turn at the checker: marker in, look, work, marker out. */
    private void inside(CuratorFramework client, String marker) throws Exception {
        String path = insidePath + "/" + marker;
        client.create().withMode(CreateMode.EPHEMERAL).forPath(path);
        try {
            List<String> markers = client.getChildren().forPath(insidePath);
            maxSeen.accumulateAndGet(markers.size(), Math::max);
            if (markers.size() > maxLeases) {
                violations.incrementAndGet();
                say("VIOLATION " + marker + " " + markers.size() + " " + String.join(",", markers));
            }
            if (markers.stream().anyMatch(m -> !m.startsWith(idPrefix + "-"))) {
                mixed.incrementAndGet();
            }
            Thread.sleep(ThreadLocalRandom.current().nextInt(5, 16));
        } finally {
            client.delete().forPath(path);
        }
    }

    /** The ids of every lease node in sequence order, through Curator's own view. */
    private String participants() throws Exception {
        InterProcessSemaphoreV2 view = new InterProcessSemaphoreV2(admin, semaphorePath, maxLeases);
        List<String> nodes;
        try {
            nodes = new ArrayList<>(view.getParticipantNodes());
        } catch (KeeperException.NoNodeException none) {
            return "";
        }
        // Lease nodes end in a ten-digit sequence.
        nodes.sort(Comparator.comparing(node -> node.substring(node.length() - 10)));
        List<String> ids = new ArrayList<>();
        for (String node : nodes) {
            try {
                byte[] data = admin.getData().forPath(semaphorePath + "/leases/" + node);
                ids.add(new String(data, StandardCharsets.UTF_8));
            } catch (KeeperException.NoNodeException gone) {
                // Released between the listing and the read.
            }
        }
        return String.join(",", ids);
    }

    private void run() throws Exception {
        admin = newClient();
        serve(admin, connectString);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "ACQUIRE":
            case "TRY_ACQUIRE":
            case "RELEASE":
            case "MUTEX_TRY":
            case "MUTEX_RELEASE":
                slot(command[1]).commands.put(command);
                return true;
            case "CHURN":
                startChurn(Integer.parseInt(command[1]), Integer.parseInt(command[2]));
                return true;
            case "PARTICIPANTS":
                say("PARTICIPANTS " + participants());
                return true;
            default:
                return false;
        }
    }

    @Override
    void quit() {
        for (Slot slot : slots.values()) {
            slot.thread.interrupt();
        }
        synchronized (clients) {
            for (CuratorFramework client : clients) {
                client.close();
            }
        }
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println(
                    "usage: CuratorSemaphoreWorker <connectString> <semaphorePath> <maxLeases> <idPrefix> [insidePath]");
            System.exit(2);
        }
        new CuratorSemaphoreWorker(args[0], args[1], Integer.parseInt(args[2]), args[3],
                args.length > 4 ? args[4] : "/unused").run();
        System.exit(0);
    }
}
