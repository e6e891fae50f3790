import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.atomic.PromotedToLock;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;

/**
 * Curator 5.x DistributedAtomicLongs, SharedCounts and DistributedDoubleBarriers driven over
 * stdin/stdout, for zk-recipes' counter and barrier interop tests.
 *
 * <p>Usage: {@code CuratorCounterWorker <connectString> <basePath>}
 *
 * <p>A <em>slot</em> is one participant with a CuratorFramework (so a session) of its own,
 * whose commands run one at a time on its own thread, so that several slots count, enter or
 * leave at once. The {@code SHARED_*} and {@code GET} commands run on the main loop, on the
 * worker's admin client.
 *
 * <p>The barrier commands record, for the test, when each slot calls {@code enter} or
 * {@code leave} and when it gets through: persistent sequential nodes under
 * {@code <basePath>/events} (the test makes that parent), named
 * {@code <kind>-java-<slot>-<sequence>} with kind {@code call-enter} (made just before the
 * call), {@code pass-enter} (just after it returned), {@code call-leave} and
 * {@code pass-leave}. Their sequence numbers order the events of both languages on the
 * server.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code COUNT <slot> <counterPath> <n> <promoted:yes|no> <lockPath>}: on the slot's
 *       thread, {@code n} increments of
 *       {@code new DistributedAtomicLong(client, counterPath, new RetryNTimes(10, 5))}, or when
 *       promoted ({@code yes}) of {@code new DistributedAtomicLong(client, counterPath,
 *       new RetryNTimes(0, 0),
 *       PromotedToLock.builder().lockPath(lockPath).retryPolicy(new RetryNTimes(10, 10)).build())}:
 *       one optimistic attempt, then the lock (waited for without a time limit, Curator's
 *       default). {@code COUNTING <slot>} once it starts; when done,
 *       {@code COUNT_STATS <slot> <optimisticTries> <promotedTries>} (summed over the
 *       increments) and then {@code COUNTED <slot> <successes> <posts>}, posts being the post
 *       values of the increments that succeeded, comma-separated, in order (empty if none).</li>
 *   <li>{@code GET <counterPath>}: {@code VALUE <v>}, Curator's {@code DistributedAtomicLong.get()}.</li>
 *   <li>{@code SHARED_SET <path> <int>}: a {@code SharedCount(admin, path, 0)} started,
 *       {@code setCount(int)}, closed; {@code SHARED_SET_DONE}.</li>
 *   <li>{@code SHARED_GET <path>}: a {@code SharedCount(admin, path, 0)} started (it reads the
 *       node), its {@code getVersionedValue()}, closed; {@code SHARED <value> <version>}.</li>
 *   <li>{@code SHARED_WATCH <path>}: a started {@code SharedCount(admin, path, 0)} (closed at
 *       {@code QUIT}) whose listener prints {@code SHARED_CHANGED <path> <value>} on every
 *       change; {@code SHARED_WATCHING}.</li>
 *   <li>{@code ENTER <slot> <barrierPath> <qty>}: on the slot's thread,
 *       {@code new DistributedDoubleBarrier(client, barrierPath, qty).enter()} (kept as the
 *       slot's barrier), between the events above; {@code ENTERED <slot>} once it returned.</li>
 *   <li>{@code LEAVE <slot>}: on the slot's thread, {@code leave()} on the slot's barrier,
 *       between the events above; {@code LEFT <slot>} once it returned.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR <slot> <message>} ({@code ERROR - <message>} for a command of
 * the main loop). {@code READY} is printed at start.
 */
public final class CuratorCounterWorker extends CuratorWorker {
    private final String connectString;
    private final String eventsPath;
    private final Map<String, Slot> slots = new ConcurrentHashMap<>();
    private final List<SharedCount> watches = new ArrayList<>();
    private CuratorFramework admin;

    private CuratorCounterWorker(String connectString, String basePath) {
        this.connectString = connectString;
        this.eventsPath = basePath + "/events";
    }

    /** One participant: its own client, its barrier once it entered, and its thread. */
    private final class Slot extends CuratorWorker.Slot {
        final CuratorFramework client;
        DistributedDoubleBarrier barrier;

        Slot(String name) {
            super(name);
            this.client = startClient(connectString, null);
            start();
        }

        @Override
        boolean handle(String[] command) throws Exception {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("slot " + name + " could not connect to " + connectString);
            }
            switch (command[0]) {
                case "COUNT":
                    count(command[2], Integer.parseInt(command[3]), command[4].equals("yes"), command[5]);
                    return true;
                case "ENTER":
                    barrier = new DistributedDoubleBarrier(client, command[2], Integer.parseInt(command[3]));
                    event("call-enter");
                    barrier.enter();
                    event("pass-enter");
                    say("ENTERED " + name);
                    return true;
                case "LEAVE":
                    if (barrier == null) {
                        throw new IllegalStateException("LEAVE before ENTER");
                    }
                    event("call-leave");
                    barrier.leave();
                    event("pass-leave");
                    say("LEFT " + name);
                    return true;
                default:
                    return false;
            }
        }

        private void count(String counterPath, int n, boolean promoted, String lockPath) throws Exception {
            // Promoted: to the lock after the first lost race, so that the lock is used often.
            RetryNTimes optimistic = promoted ? new RetryNTimes(0, 0) : new RetryNTimes(10, 5);
            DistributedAtomicLong counter = promoted
                    ? new DistributedAtomicLong(client, counterPath, optimistic,
                            PromotedToLock.builder().lockPath(lockPath).retryPolicy(new RetryNTimes(10, 10)).build())
                    : new DistributedAtomicLong(client, counterPath, optimistic);
            say("COUNTING " + name);
            List<String> posts = new ArrayList<>();
            long optimisticTries = 0;
            long promotedTries = 0;
            for (int i = 0; i < n; i++) {
                AtomicValue<Long> value = counter.increment();
                optimisticTries += value.getStats().getOptimisticTries();
                promotedTries += value.getStats().getPromotedLockTries();
                if (value.succeeded()) {
                    posts.add(Long.toString(value.postValue()));
                }
            }
            say("COUNT_STATS " + name + " " + optimisticTries + " " + promotedTries);
            say("COUNTED " + name + " " + posts.size() + " " + String.join(",", posts));
        }

        /** Records an event of this slot: a persistent sequential node under the events path. */
        private void event(String kind) throws Exception {
            client.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL)
                    .forPath(eventsPath + "/" + kind + "-java-" + name + "-");
        }
    }

    private Slot slot(String name) {
        return slots.computeIfAbsent(name, Slot::new);
    }

    private void run() throws Exception {
        admin = startClient(connectString, null);
        serve(admin, connectString);
    }

    /** A SharedCount on the admin client, started (so it has read the node, made with 0 if need be). */
    private SharedCount startedCount(String path) throws Exception {
        SharedCount count = new SharedCount(admin, path, 0);
        count.start();
        return count;
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "COUNT":
            case "ENTER":
            case "LEAVE":
                slot(command[1]).commands.put(command);
                return true;
            case "GET": {
                DistributedAtomicLong counter = new DistributedAtomicLong(admin, command[1], new RetryNTimes(0, 0));
                say("VALUE " + counter.get().postValue());
                return true;
            }
            case "SHARED_SET": {
                SharedCount count = startedCount(command[1]);
                try {
                    count.setCount(Integer.parseInt(command[2]));
                } finally {
                    count.close();
                }
                say("SHARED_SET_DONE");
                return true;
            }
            case "SHARED_GET": {
                SharedCount count = startedCount(command[1]);
                try {
                    VersionedValue<Integer> value = count.getVersionedValue();
                    say("SHARED " + value.getValue() + " " + value.getVersion());
                } finally {
                    count.close();
                }
                return true;
            }
            case "SHARED_WATCH": {
                String path = command[1];
                SharedCount count = new SharedCount(admin, path, 0);
                count.addListener(new SharedCountListener() {
                    @Override
                    public void countHasChanged(SharedCountReader reader, int newCount) {
                        say("SHARED_CHANGED " + path + " " + newCount);
                    }

                    @Override
                    public void stateChanged(CuratorFramework client, ConnectionState state) {
                        // Nothing to do: the tests do not cut the connection.
                    }
                });
                count.start();
                synchronized (watches) {
                    watches.add(count);
                }
                say("SHARED_WATCHING");
                return true;
            }
            default:
                return false;
        }
    }

    @Override
    void quit() {
        synchronized (watches) {
            for (SharedCount count : watches) {
                try {
                    count.close();
                } catch (Exception e) {
                    // Closing anyway.
                }
            }
            watches.clear();
        }
        for (Slot slot : slots.values()) {
            slot.thread.interrupt();
            slot.client.close();
        }
        admin.close();
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CuratorCounterWorker <connectString> <basePath>");
            System.exit(2);
        }
        new CuratorCounterWorker(args[0], args[1]).run();
        System.exit(0);
    }
}
