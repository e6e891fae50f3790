import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.zookeeper.KeeperException;

/**
 * A Curator 5.x InterProcessReadWriteLock driven over stdin/stdout, for zk-recipes' interop
 * tests.
 *
 * <p>Usage: {@code CuratorRwLockWorker <connectString> <lockPath> <idPrefix> [dataPath]}
 *
 * <p>Every participant has a CuratorFramework (so a session) and an InterProcessReadWriteLock
 * of its own, whose lock node data is its id. A <em>slot</em> is a participant driven one
 * command at a time, on a thread of its own (Curator's locks belong to the thread that
 * acquired them), with id {@code <idPrefix>-<slot>}. The writers and readers of
 * {@code INCREMENT} and {@code READERS} are participants too, with ids
 * {@code <idPrefix>-writer-<i>} and {@code <idPrefix>-reader-<i>}.
 *
 * <p>The data the writers and readers use, under {@code dataPath}: {@code counter}, and the
 * pair {@code pair/a}, {@code pair/b} (all created by the test). A writer, under the write
 * lock, increments the counter and then writes its new value to {@code pair/a} and then to
 * {@code pair/b}, in separate requests: a reader that overlapped a writer could see them
 * differ.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code READ <slot>} / {@code WRITE <slot>}: the slot's thread acquires the read / write
 *       lock (blocking); {@code READ_HELD <slot> <fullNodePath>} /
 *       {@code WRITE_HELD <slot> <fullNodePath>} once granted.</li>
 *   <li>{@code TRY_READ <slot> <ms>} / {@code TRY_WRITE <slot> <ms>}: the same, waiting at most
 *       ms; {@code READ_HELD ...} / {@code WRITE_HELD ...}, or {@code READ_TIMEOUT <slot>} /
 *       {@code WRITE_TIMEOUT <slot>}.</li>
 *   <li>{@code RELEASE <slot>}: releases what the slot holds; {@code RELEASED <slot>}.</li>
 *   <li>{@code INCREMENT <threads> <n>}: that many writer threads, each n times: acquire the
 *       write lock, counter + 1, pair set to the new value, release; {@code INCREMENTED <total>}
 *       when all are done.</li>
 *   <li>{@code READERS <threads>}: that many reader threads, each in a loop until
 *       {@code STOP_READERS}: acquire the read lock, read pair/a and pair/b, release. Pairs
 *       that differ are printed at once, {@code VIOLATION <reader> <a> <b>}.</li>
 *   <li>{@code STOP_READERS}: stops and joins the readers;
 *       {@code READ_CHECKS <checks> <distinctValues> <violations>}: how many pairs were read,
 *       how many different values pair/a had, and how many pairs differed.</li>
 *   <li>{@code PARTICIPANTS}: {@code PARTICIPANTS <R|W>:<id>,...} in queue order, every read
 *       (R) and write (W) node with its data, as Curator's getParticipantNodes sees them.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR <who> <message>}. {@code READY} is printed at start.
 *
 * <p>Curator's {@code downgrade} (a read acquire while holding the write lock) is not offered:
 * Curator 5.4 makes a new sequential read node for it, exposed to CURATOR-276, so the tests do
 * not rely on it.
 */
public final class CuratorRwLockWorker extends CuratorWorker {
    private final String connectString;
    private final String lockPath;
    private final String idPrefix;
    private final String counterPath;
    private final String pairA;
    private final String pairB;
    private final Map<String, Slot> slots = new ConcurrentHashMap<>();
    private final List<CuratorFramework> clients = new ArrayList<>();
    private CuratorFramework admin;

    private final AtomicBoolean readersStopping = new AtomicBoolean();
    private final List<Thread> readers = new ArrayList<>();
    private final AtomicLong readChecks = new AtomicLong();
    private final AtomicLong violations = new AtomicLong();
    private final Set<String> valuesRead = ConcurrentHashMap.newKeySet();

    private CuratorRwLockWorker(String connectString, String lockPath, String idPrefix, String dataPath) {
        this.connectString = connectString;
        this.lockPath = lockPath;
        this.idPrefix = idPrefix;
        this.counterPath = dataPath + "/counter";
        this.pairA = dataPath + "/pair/a";
        this.pairB = dataPath + "/pair/b";
    }

    /** A started client, closed by {@link #quit}. */
    private CuratorFramework newClient() {
        CuratorFramework client = startClient(connectString, null);
        synchronized (clients) {
            clients.add(client);
        }
        return client;
    }

    private InterProcessReadWriteLock newLock(CuratorFramework client, String id) {
        return new InterProcessReadWriteLock(client, lockPath, id.getBytes(StandardCharsets.UTF_8));
    }

    private static String read(CuratorFramework client, String path) throws Exception {
        return new String(client.getData().forPath(path), StandardCharsets.UTF_8).trim();
    }

    private static void write(CuratorFramework client, String path, String value) throws Exception {
        client.setData().forPath(path, value.getBytes(StandardCharsets.UTF_8));
    }

    /** One participant driven by commands: a client, a lock, and the one thread that uses them. */
    private final class Slot extends CuratorWorker.Slot {
        final CuratorFramework client;
        final InterProcessReadWriteLock lock;
        /** The half of the lock this slot holds, or null. */
        InterProcessMutex held;

        Slot(String name) {
            super(name);
            this.client = newClient();
            this.lock = newLock(client, idPrefix + "-" + name);
            start();
        }

        @Override
        boolean handle(String[] command) throws Exception {
            switch (command[0]) {
                case "READ":
                    acquire(lock.readLock(), "READ", -1);
                    return true;
                case "WRITE":
                    acquire(lock.writeLock(), "WRITE", -1);
                    return true;
                case "TRY_READ":
                    acquire(lock.readLock(), "READ", Long.parseLong(command[2]));
                    return true;
                case "TRY_WRITE":
                    acquire(lock.writeLock(), "WRITE", Long.parseLong(command[2]));
                    return true;
                case "RELEASE":
                    if (held == null) {
                        say("ERROR " + name + " RELEASE without a hold");
                        return true;
                    }
                    held.release();
                    held = null;
                    say("RELEASED " + name);
                    return true;
                default:
                    return false;
            }
        }

        /** Acquires `half`, waiting at most `timeoutMs` (forever if negative), and says so. */
        private void acquire(InterProcessMutex half, String mode, long timeoutMs) throws Exception {
            if (held != null) {
                // A second hold on one thread would be Curator's reentrancy, not a new node.
                say("ERROR " + name + " already holds a lock");
                return;
            }
            boolean granted;
            if (timeoutMs < 0) {
                half.acquire();
                granted = true;
            } else {
                granted = half.acquire(timeoutMs, TimeUnit.MILLISECONDS);
            }
            if (granted) {
                held = half;
                say(mode + "_HELD " + name + " " + ownNode(client, lockPath));
            } else {
                say(mode + "_TIMEOUT " + name);
            }
        }
    }

    private Slot slot(String name) {
        return slots.computeIfAbsent(name, Slot::new);
    }

    /** Starts `threads` writers of `n` increments each, and a thread that reports when all are done. */
    private void startWriters(int threads, int n) {
        List<Thread> writers = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            String id = idPrefix + "-writer-" + i;
            Thread writer = new Thread(() -> {
                try {
                    CuratorFramework client = newClient();
                    InterProcessMutex writeLock = newLock(client, id).writeLock();
                    for (int k = 0; k < n; k++) {
                        writeLock.acquire();
                        try {
                            // Plain reads and writes: only the lock keeps the count exact and
                            // the pair equal.
                            String next = Long.toString(Long.parseLong(read(client, counterPath)) + 1);
                            write(client, counterPath, next);
                            write(client, pairA, next);
                            write(client, pairB, next);
                        } finally {
                            writeLock.release();
                        }
                    }
                } catch (Exception e) {
                    say("ERROR " + id + " " + oneLine(e));
                }
            }, id);
            writer.setDaemon(true);
            writer.start();
            writers.add(writer);
        }
        whenAllEnd(writers, "writers-done", () -> say("INCREMENTED " + (threads * n)));
    }

    /** Starts `threads` readers that check the pair until {@link #readersStopping} is set. */
    private void startReaders(int threads) {
        readersStopping.set(false);
        for (int i = 0; i < threads; i++) {
            String id = idPrefix + "-reader-" + i;
            Thread reader = new Thread(() -> {
                try {
                    CuratorFramework client = newClient();
                    InterProcessMutex readLock = newLock(client, id).readLock();
                    while (!readersStopping.get()) {
                        String a;
                        String b;
                        readLock.acquire();
                        try {
                            a = read(client, pairA);
                            b = read(client, pairB);
                        } finally {
                            readLock.release();
                        }
                        readChecks.incrementAndGet();
                        valuesRead.add(a);
                        if (!a.equals(b)) {
                            violations.incrementAndGet();
                            say("VIOLATION " + id + " " + a + " " + b);
                        }
                    }
                } catch (Exception e) {
                    say("ERROR " + id + " " + oneLine(e));
                }
            }, id);
            reader.setDaemon(true);
            reader.start();
            readers.add(reader);
        }
    }

    private void stopReaders() throws InterruptedException {
        readersStopping.set(true);
        for (Thread reader : readers) {
            reader.join();
        }
        readers.clear();
        say("READ_CHECKS " + readChecks.get() + " " + valuesRead.size() + " " + violations.get());
    }

    /** Every read and write node in queue order, through Curator's own view of the lock. */
    private String participants() throws Exception {
        InterProcessReadWriteLock view = new InterProcessReadWriteLock(admin, lockPath);
        List<String[]> nodes = new ArrayList<>();
        for (String node : view.readLock().getParticipantNodes()) {
            nodes.add(new String[] {"R", node});
        }
        for (String node : view.writeLock().getParticipantNodes()) {
            nodes.add(new String[] {"W", node});
        }
        // Both kinds end in the same ten-digit sequence, which orders the queue.
        nodes.sort(Comparator.comparing(entry -> entry[1].substring(entry[1].length() - 10)));
        List<String> entries = new ArrayList<>();
        for (String[] entry : nodes) {
            try {
                entries.add(entry[0] + ":" + new String(admin.getData().forPath(entry[1]), StandardCharsets.UTF_8));
            } catch (KeeperException.NoNodeException gone) {
                // Left the queue between the listing and the read.
            }
        }
        return String.join(",", entries);
    }

    private void run() throws Exception {
        admin = newClient();
        serve(admin, connectString);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "READ":
            case "WRITE":
            case "TRY_READ":
            case "TRY_WRITE":
            case "RELEASE":
                slot(command[1]).commands.put(command);
                return true;
            case "INCREMENT":
                startWriters(Integer.parseInt(command[1]), Integer.parseInt(command[2]));
                return true;
            case "READERS":
                startReaders(Integer.parseInt(command[1]));
                return true;
            case "STOP_READERS":
                stopReaders();
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
        readersStopping.set(true);
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
        if (args.length < 3) {
            System.err.println("usage: CuratorRwLockWorker <connectString> <lockPath> <idPrefix> [dataPath]");
            System.exit(2);
        }
        new CuratorRwLockWorker(args[0], args[1], args[2], args.length > 3 ? args[3] : "/unused").run();
        System.exit(0);
    }
}
