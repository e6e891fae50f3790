import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.GroupMember;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;

/**
 * Apache Curator 5.x running the same scenarios as zk-recipes' benches/recipes.rs, so that
 * both are measured in one run against one server.
 *
 * <p>Usage: {@code CuratorBench <connectString> <scenario> <path> [args]}, where scenario is
 * {@code contended <sessions> <seconds>}, {@code selector-handoff <handoffs>},
 * {@code read-contended <sessions> <seconds>}, {@code writer-behind-readers <sessions>
 * <rounds>}, {@code semaphore-contended <sessions> <leases> <seconds>},
 * {@code cache-load <runs> <nodes>}, {@code cache-latency <node> <samples> <warm-up>},
 * {@code node-recreate <samples> <warm-up> <pause-ms>}, {@code group-join <samples>
 * <warm-up>}, {@code discovery-visible <samples> <warm-up>} or {@code provider-pick
 * <instances> <warm-up-seconds> <seconds> <batch>} or {@code counter-contended <sessions>
 * <warm-up-seconds> <seconds>}. Prints {@code KEY VALUE} lines, as the Rust benchmark does.
 */
public final class CuratorBench {
    private static CuratorFramework client(String connectString) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(5000)
                .retryPolicy(new ExponentialBackoffRetry(100, 3))
                .build();
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect to " + connectString);
        }
        return client;
    }

    /** {@code sessions} clients loop acquire/release on one InterProcessMutex each. */
    private static void contended(String connectString, String path, int sessions, double seconds)
            throws Exception {
        contended(connectString, path, sessions, seconds, "curator_contended");
    }

    /** The CPU time this JVM has used so far, in nanoseconds. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }

    /**
     * {@link #contended} with its figures reported as {@code <key>_...}, and the share of one
     * core this JVM used per 1,000 acquisitions a second.
     */
    private static void contended(String connectString, String path, int sessions, double seconds,
            String key) throws Exception {
        List<CuratorFramework> clients = new ArrayList<>();
        List<InterProcessMutex> locks = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            locks.add(new InterProcessMutex(client, path));
        }
        AtomicLong violations = new AtomicLong();
        // Two seconds of warm-up for the JIT, then the measured run; overlaps count in both.
        run(locks, 2.0, new AtomicLong(), violations);
        AtomicLong acquisitions = new AtomicLong();
        // The server's packet counters around the timed run only, the warm-up left out.
        long[] before = packets(connectString);
        long started = System.nanoTime();
        long cpuBefore = processCpuNanos();
        run(locks, seconds, acquisitions, violations);
        double elapsed = (System.nanoTime() - started) / 1e9;
        double coreShare = (processCpuNanos() - cpuBefore) / 1e9 / elapsed;
        long[] after = packets(connectString);
        double perSecond = acquisitions.get() / elapsed;
        System.out.printf("%s_acquisitions_per_s %.1f%n", key, perSecond);
        System.out.println(key + "_violations " + violations.get());
        reportPackets(key, before, after, acquisitions.get());
        System.out.printf("%s_core_share_per_1000_per_s %.3f%n", key,
                coreShare / Math.max(perSecond / 1000, Double.MIN_VALUE));
        for (CuratorFramework client : clients) {
            client.close();
        }
    }

    /**
     * Reports the requests and packets sent per acquisition between two {@link #packets} reads,
     * and the transaction log's share: its fsyncs per acquisition, the requests each flush let
     * through (the group commit's mean batch, reads queued behind writes included) and the mean
     * fsync time in the whole milliseconds ZooKeeper counts (rounded down: a lower bound).
     */
    private static void reportPackets(String key, long[] before, long[] after, long acquisitions) {
        double taken = Math.max(1, acquisitions);
        double fsyncs = Math.max(1, after[2] - before[2]);
        System.out.printf("%s_requests_per_acquisition %.2f%n", key, (after[0] - before[0]) / taken);
        System.out.printf("%s_packets_sent_per_acquisition %.2f%n", key, (after[1] - before[1]) / taken);
        System.out.printf("%s_fsyncs_per_acquisition %.2f%n", key, (after[2] - before[2]) / taken);
        System.out.printf("%s_requests_per_flush %.2f%n", key, (after[4] - before[4]) / fsyncs);
        System.out.printf("%s_fsync_whole_ms_mean %.2f%n", key, (after[3] - before[3]) / fsyncs);
        if (before[5] >= 0 && after[5] >= 0) {
            // Clock ticks (USER_HZ, 100 a second) to milliseconds.
            System.out.printf("%s_server_cpu_ms_per_acquisition %.3f%n", key,
                (after[5] - before[5]) * 10.0 / taken);
        }
    }

    /**
     * The CPU time (user and system, in clock ticks) the server's process has used, from
     * {@code /proc/<pid>/stat}, where the benchmark passed its pid as {@code zk.server.pid};
     * -1 where it did not.
     */
    private static long serverCpuTicks() {
        String pid = System.getProperty("zk.server.pid");
        if (pid == null) {
            return -1;
        }
        try {
            String stat = new String(java.nio.file.Files.readAllBytes(
                java.nio.file.Paths.get("/proc", pid, "stat")), StandardCharsets.US_ASCII);
            // The fields after the command name, which is in parentheses and may hold spaces.
            String[] fields = stat.substring(stat.lastIndexOf(')') + 1).trim().split("\\s+");
            // utime and stime: fields 14 and 15 of the line, here at 11 and 12 (the state,
            // field 3, is at 0).
            return Long.parseLong(fields[11]) + Long.parseLong(fields[12]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /**
     * The server's {@code zk_packets_received}, {@code zk_packets_sent}, {@code zk_cnt_fsynctime},
     * {@code zk_sum_fsynctime} and {@code zk_sum_sync_processor_batch_size}, in that order, from
     * a {@code mntr} four-letter word sent to the first server of {@code connectString}; then
     * the server's {@link #serverCpuTicks}.
     */
    private static long[] packets(String connectString) throws IOException {
        String address = connectString.split(",")[0].split("/")[0];
        int colon = address.lastIndexOf(':');
        String text;
        try (Socket socket = new Socket(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1)))) {
            socket.setSoTimeout(5000);
            OutputStream out = socket.getOutputStream();
            out.write("mntr".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = socket.getInputStream();
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        String[] names = {"zk_packets_received", "zk_packets_sent", "zk_cnt_fsynctime",
            "zk_sum_fsynctime", "zk_sum_sync_processor_batch_size"};
        long[] counters = new long[names.length];
        java.util.Arrays.fill(counters, -1);
        for (String line : text.split("\n")) {
            String[] fields = line.trim().split("\\s+");
            if (fields.length != 2) {
                continue;
            }
            for (int i = 0; i < names.length; i++) {
                if (fields[0].equals(names[i])) {
                    counters[i] = Long.parseLong(fields[1]);
                }
            }
        }
        for (int i = 0; i < names.length; i++) {
            if (counters[i] < 0) {
                throw new IllegalStateException("no " + names[i] + " in the mntr answer: " + text);
            }
        }
        long[] withCpu = java.util.Arrays.copyOf(counters, names.length + 1);
        withCpu[names.length] = serverCpuTicks();
        return withCpu;
    }

    private static void run(List<InterProcessMutex> locks, double seconds, AtomicLong acquisitions,
            AtomicLong violations) throws InterruptedException {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        AtomicBoolean held = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        for (InterProcessMutex lock : locks) {
            Thread thread = new Thread(() -> {
                try {
                    while (System.nanoTime() < deadline) {
                        lock.acquire();
                        if (held.getAndSet(true)) {
                            violations.incrementAndGet();
                        }
                        acquisitions.incrementAndGet();
                        held.set(false);
                        lock.release();
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
    }

    /** Two selectors with autoRequeue whose leader returns at once. */
    private static void selectorHandoff(String connectString, String path, int handoffs,
            int candidates, String key) throws Exception {
        int warmUp = 100;
        List<Long> samples = Collections.synchronizedList(new ArrayList<>());
        AtomicLong lastReturn = new AtomicLong();
        CountDownLatch done = new CountDownLatch(1);
        List<CuratorFramework> clients = new ArrayList<>();
        List<LeaderSelector> selectors = new ArrayList<>();
        for (int i = 0; i < candidates; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            LeaderSelector selector = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework c) {
                    long now = System.nanoTime();
                    long returned = lastReturn.getAndSet(0);
                    if (returned != 0) {
                        samples.add(now - returned);
                        if (samples.size() == handoffs + warmUp) {
                            done.countDown();
                        }
                    }
                    lastReturn.set(System.nanoTime());
                }
            });
            selector.autoRequeue();
            selectors.add(selector);
        }
        // Started together once all are connected, as the Rust scenario does.
        for (LeaderSelector selector : selectors) {
            selector.start();
        }
        if (!done.await(300, TimeUnit.SECONDS)) {
            throw new IllegalStateException("too few handoffs: " + samples.size());
        }
        for (LeaderSelector selector : selectors) {
            selector.close();
        }
        for (CuratorFramework client : clients) {
            client.close();
        }
        List<Long> measured;
        synchronized (samples) {
            measured = new ArrayList<>(samples.subList(warmUp, warmUp + handoffs));
        }
        Collections.sort(measured);
        System.out.printf("%s_median_us %.1f%n", key, percentile(measured, 0.5) / 1e3);
        System.out.printf("%s_p99_us %.1f%n", key, percentile(measured, 0.99) / 1e3);
    }

    /** {@code sessions} clients loop read acquire/release on one read/write lock each. */
    private static void readContended(String connectString, String path, int sessions,
            double seconds) throws Exception {
        List<CuratorFramework> clients = new ArrayList<>();
        List<InterProcessMutex> locks = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            locks.add(new InterProcessReadWriteLock(client, path).readLock());
        }
        // The violation count means nothing for readers, who share.
        run(locks, 2.0, new AtomicLong(), new AtomicLong());
        AtomicLong acquisitions = new AtomicLong();
        long[] before = packets(connectString);
        long started = System.nanoTime();
        run(locks, seconds, acquisitions, new AtomicLong());
        double elapsed = (System.nanoTime() - started) / 1e9;
        long[] after = packets(connectString);
        System.out.printf("curator_read_acquisitions_per_s %.1f%n", acquisitions.get() / elapsed);
        reportPackets("curator_read", before, after, acquisitions.get());
        for (CuratorFramework client : clients) {
            client.close();
        }
    }

    /**
     * {@code sessions} clients keep the read lock busy (1 ms holds); a writer on its own client
     * asks for the write lock {@code rounds} times, as the Rust scenario does.
     */
    private static void writerBehindReaders(String connectString, String path, int sessions,
            int rounds) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        List<CuratorFramework> clients = new ArrayList<>();
        List<Thread> readers = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            InterProcessMutex read = new InterProcessReadWriteLock(client, path).readLock();
            Thread reader = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        read.acquire();
                        Thread.sleep(1);
                        read.release();
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            reader.start();
            readers.add(reader);
        }
        CuratorFramework writerClient = client(connectString);
        clients.add(writerClient);
        InterProcessMutex write = new InterProcessReadWriteLock(writerClient, path).writeLock();
        List<Long> waits = new ArrayList<>();
        for (int round = 0; round < rounds + 5; round++) {
            long asked = System.nanoTime();
            write.acquire();
            if (round >= 5) {
                waits.add(System.nanoTime() - asked);
            }
            Thread.sleep(1);
            write.release();
            Thread.sleep(5);
        }
        stop.set(true);
        for (Thread reader : readers) {
            reader.join();
        }
        for (CuratorFramework client : clients) {
            client.close();
        }
        Collections.sort(waits);
        System.out.printf("curator_writer_wait_behind_readers_median_us %.1f%n", percentile(waits, 0.5) / 1e3);
        System.out.printf("curator_writer_wait_behind_readers_p99_us %.1f%n", percentile(waits, 0.99) / 1e3);
    }

    /** {@code sessions} clients loop acquire/release on one semaphore of {@code leases}. */
    private static void semaphoreContended(String connectString, String path, int sessions,
            int leases, double seconds) throws Exception {
        List<CuratorFramework> clients = new ArrayList<>();
        List<InterProcessSemaphoreV2> semaphores = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            semaphores.add(new InterProcessSemaphoreV2(client, path, leases));
        }
        runSemaphores(semaphores, 2.0, new AtomicLong());
        AtomicLong acquisitions = new AtomicLong();
        long[] before = packets(connectString);
        long started = System.nanoTime();
        runSemaphores(semaphores, seconds, acquisitions);
        double elapsed = (System.nanoTime() - started) / 1e9;
        long[] after = packets(connectString);
        System.out.printf("curator_semaphore_acquisitions_per_s %.1f%n", acquisitions.get() / elapsed);
        reportPackets("curator_semaphore", before, after, acquisitions.get());
        for (CuratorFramework client : clients) {
            client.close();
        }
    }

    private static void runSemaphores(List<InterProcessSemaphoreV2> semaphores, double seconds,
            AtomicLong acquisitions) throws InterruptedException {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        List<Thread> threads = new ArrayList<>();
        for (InterProcessSemaphoreV2 semaphore : semaphores) {
            Thread thread = new Thread(() -> {
                try {
                    while (System.nanoTime() < deadline) {
                        Lease lease = semaphore.acquire();
                        acquisitions.incrementAndGet();
                        semaphore.returnLease(lease);
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
    }

    /**
     * The first load of the tree at {@code path} (made by the Rust side) by a CuratorCache:
     * the time from {@code start()} to the {@code initialized} callback, one untimed run, then
     * {@code runs} timed ones on the same client, a new cache each.
     */
    private static void cacheLoad(String connectString, String path, int runs, int nodes)
            throws Exception {
        CuratorFramework client = client(connectString);
        List<Long> samples = new ArrayList<>();
        for (int run = 0; run <= runs; run++) {
            CountDownLatch initialized = new CountDownLatch(1);
            CuratorCache cache = CuratorCache.build(client, path);
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forInitialized(initialized::countDown)
                    .build());
            long started = System.nanoTime();
            cache.start();
            if (!initialized.await(300, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the cache was not initialized in time");
            }
            long elapsed = System.nanoTime() - started;
            int held = cache.size();
            cache.close();
            if (held != nodes) {
                throw new IllegalStateException("the cache holds " + held + " nodes of " + nodes);
            }
            if (run == 0) {
                System.out.printf("curator_cache_load_first_ms %.1f%n", elapsed / 1e6);
            } else {
                samples.add(elapsed);
            }
        }
        client.close();
        Collections.sort(samples);
        System.out.printf("curator_cache_load_ms %.1f%n", samples.get((samples.size() - 1) / 2) / 1e6);
    }

    /**
     * A CuratorCache over the tree at {@code path}; a second client sets {@code node}'s data,
     * and the time from sending the setData to the cache's change callback is measured, one
     * change at a time.
     */
    private static void cacheLatency(String connectString, String path, String node, int samples,
            int warmUp) throws Exception {
        CuratorFramework cacheClient = client(connectString);
        CuratorFramework writer = client(connectString);
        CountDownLatch initialized = new CountDownLatch(1);
        BlockingQueue<Long> changed = new LinkedBlockingQueue<>();
        CuratorCache cache = CuratorCache.build(cacheClient, path);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forInitialized(initialized::countDown)
                .forChanges((before, after) -> {
                    if (after.getPath().equals(node)) {
                        changed.add(System.nanoTime());
                    }
                })
                .build());
        cache.start();
        if (!initialized.await(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("the cache was not initialized in time");
        }
        List<Long> latencies = new ArrayList<>();
        for (int i = 0; i < warmUp + samples; i++) {
            byte[] data = Long.toString(i).getBytes();
            long started = System.nanoTime();
            writer.setData().forPath(node, data);
            Long at = changed.poll(10, TimeUnit.SECONDS);
            if (at == null) {
                throw new IllegalStateException("no change callback in time");
            }
            if (i >= warmUp) {
                latencies.add(at - started);
            }
        }
        cache.close();
        writer.close();
        cacheClient.close();
        Collections.sort(latencies);
        System.out.printf("curator_cache_latency_median_us %.1f%n", percentile(latencies, 0.5) / 1e3);
        System.out.printf("curator_cache_latency_p99_us %.1f%n", percentile(latencies, 0.99) / 1e3);
    }

    /**
     * An ephemeral Curator PersistentNode at {@code <path>/node} kept by one client; a second
     * client deletes it through its raw ZooKeeper handle, an async delete and an async exists
     * with a watcher sent back to back, and the time from sending the delete to the node
     * existing again (the watcher's NodeCreated, or the exists' answer should it already find
     * the node) is measured, one deletion at a time, {@code pauseMs} apart.
     */
    private static void nodeRecreate(String connectString, String path, int samples, int warmUp,
            long pauseMs) throws Exception {
        CuratorFramework holder = client(connectString);
        CuratorFramework deleter = client(connectString);
        String node = path + "/node";
        PersistentNode persistent = new PersistentNode(holder, CreateMode.EPHEMERAL, false, node,
                "bench".getBytes());
        persistent.start();
        if (!persistent.waitForInitialCreate(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("the persistent node was not made within 30 s");
        }
        ZooKeeper zk = deleter.getZookeeperClient().getZooKeeper();
        List<Long> latencies = new ArrayList<>();
        for (int i = 0; i < warmUp + samples; i++) {
            CompletableFuture<Integer> deleted = new CompletableFuture<>();
            CompletableFuture<Long> again = new CompletableFuture<>();
            Watcher watcher = event -> {
                if (event.getType() == Watcher.Event.EventType.NodeCreated) {
                    again.complete(System.nanoTime());
                } else if (event.getType() != Watcher.Event.EventType.None) {
                    again.completeExceptionally(
                            new IllegalStateException("the exists watch fired with " + event));
                }
            };
            long started = System.nanoTime();
            zk.delete(node, -1, (rc, p, ctx) -> deleted.complete(rc), null);
            zk.exists(node, watcher, (rc, p, ctx, stat) -> {
                if (rc == KeeperException.Code.OK.intValue() && stat != null) {
                    again.complete(System.nanoTime());
                } else if (rc != KeeperException.Code.NONODE.intValue()) {
                    again.completeExceptionally(KeeperException.create(KeeperException.Code.get(rc), p));
                }
            }, null);
            long at = again.get(30, TimeUnit.SECONDS);
            int rc = deleted.get(30, TimeUnit.SECONDS);
            if (rc != KeeperException.Code.OK.intValue()) {
                throw KeeperException.create(KeeperException.Code.get(rc), node);
            }
            if (i >= warmUp) {
                latencies.add(at - started);
            }
            Thread.sleep(pauseMs);
        }
        persistent.close();
        deleter.close();
        holder.close();
        Collections.sort(latencies);
        System.out.printf("curator_node_recreate_median_us %.1f%n", percentile(latencies, 0.5) / 1e3);
        System.out.printf("curator_node_recreate_p99_us %.1f%n", percentile(latencies, 0.99) / 1e3);
    }

    /** How long the group-join poll parks between two reads of the observer's view. */
    private static final long GROUP_POLL_NANOS = 10_000;

    /**
     * An observing Curator GroupMember ({@code observer}) on one client; members
     * ({@code member-<i>}) one after another on a second client made beforehand, each timed
     * from its {@code start()} to the observer's view holding it, then closed, the next made
     * once the observer's view has lost it. Curator 5.4's GroupMember has no listener, so the
     * view is polled: {@code getCurrentMembers()} every {@link #GROUP_POLL_NANOS} of
     * {@code parkNanos} (about 60 µs with Linux's timer slack), which the figures include up
     * to one interval of (the Rust side waits for its view's Joined event instead).
     */
    private static void groupJoin(String connectString, String path, int samples, int warmUp)
            throws Exception {
        CuratorFramework observerClient = client(connectString);
        CuratorFramework memberClient = client(connectString);
        GroupMember observer = new GroupMember(observerClient, path, "observer", "observer".getBytes());
        observer.start();
        List<Long> latencies = new ArrayList<>();
        for (int i = 0; i < warmUp + samples; i++) {
            String id = "member-" + i;
            GroupMember member = new GroupMember(memberClient, path, id, "bench".getBytes());
            long started = System.nanoTime();
            member.start();
            long seen = awaitMembership(observer, id, true);
            if (i >= warmUp) {
                latencies.add(seen - started);
            }
            member.close();
            awaitMembership(observer, id, false);
        }
        observer.close();
        memberClient.close();
        observerClient.close();
        Collections.sort(latencies);
        System.out.printf("curator_group_join_median_us %.1f%n", percentile(latencies, 0.5) / 1e3);
        System.out.printf("curator_group_join_p99_us %.1f%n", percentile(latencies, 0.99) / 1e3);
    }

    /** Polls the observer's view until {@code id} is in it ({@code present}) or not; when. */
    private static long awaitMembership(GroupMember observer, String id, boolean present) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            if (observer.getCurrentMembers().containsKey(id) == present) {
                return System.nanoTime();
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the observer's view did not " + (present ? "gain " : "lose ")
                        + id + " within 30 s");
            }
            LockSupport.parkNanos(GROUP_POLL_NANOS);
        }
    }

    /** The service the discovery scenarios register their instances under. */
    private static final String DISCOVERY_SERVICE = "bench";

    /** A started {@code ServiceDiscovery<String>} of the registry at {@code path}. */
    private static ServiceDiscovery<String> discovery(CuratorFramework client, String path) throws Exception {
        ServiceDiscovery<String> discovery = ServiceDiscoveryBuilder.builder(String.class)
                .client(client)
                .basePath(path)
                .serializer(new JsonInstanceSerializer<>(String.class))
                .build();
        discovery.start();
        return discovery;
    }

    /**
     * A DYNAMIC instance {@code id} of {@link #DISCOVERY_SERVICE} with a String payload, as the
     * Rust side makes them. ({@code ServiceInstance.builder()} looks up the local addresses,
     * so it is called before any timing.)
     */
    private static ServiceInstance<String> discoveryInstance(String id) throws Exception {
        return ServiceInstance.<String>builder()
                .name(DISCOVERY_SERVICE)
                .id(id)
                .address("127.0.0.1")
                .port(8080)
                .payload("bench")
                .build();
    }

    /** Whether the cache's instances hold one of id {@code id}. */
    private static boolean holds(ServiceCache<String> cache, String id) {
        for (ServiceInstance<String> instance : cache.getInstances()) {
            if (instance.getId().equals(id)) {
                return true;
            }
        }
        return false;
    }

    /**
     * A started ServiceCache of {@link #DISCOVERY_SERVICE} on one client; a ServiceDiscovery
     * on a second client, made beforehand, registers instances ({@code instance-<i>}) one
     * after another, each timed from {@code registerService} to the cache listener's
     * {@code cacheChanged} call that finds it in {@code getInstances()}, then unregistered, the
     * next registered once a {@code cacheChanged} call finds it gone.
     */
    private static void discoveryVisible(String connectString, String path, int samples, int warmUp)
            throws Exception {
        CuratorFramework observerClient = client(connectString);
        CuratorFramework registrarClient = client(connectString);
        ServiceDiscovery<String> observer = discovery(observerClient, path);
        ServiceDiscovery<String> registrar = discovery(registrarClient, path);
        ServiceCache<String> cache = observer.serviceCacheBuilder().name(DISCOVERY_SERVICE).build();
        // The id awaited (null: none), whether it is awaited present or gone, and when the
        // listener saw it so.
        AtomicReference<String> awaited = new AtomicReference<>();
        AtomicBoolean present = new AtomicBoolean();
        BlockingQueue<Long> seen = new LinkedBlockingQueue<>();
        cache.addListener(new ServiceCacheListener() {
            @Override
            public void cacheChanged() {
                String id = awaited.get();
                if (id != null && holds(cache, id) == present.get()) {
                    long at = System.nanoTime();
                    if (awaited.compareAndSet(id, null)) {
                        seen.add(at);
                    }
                }
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState state) {
            }
        });
        cache.start();
        List<Long> latencies = new ArrayList<>();
        for (int i = 0; i < warmUp + samples; i++) {
            String id = "instance-" + i;
            ServiceInstance<String> instance = discoveryInstance(id);
            present.set(true);
            awaited.set(id);
            long started = System.nanoTime();
            registrar.registerService(instance);
            Long at = seen.poll(30, TimeUnit.SECONDS);
            if (at == null) {
                throw new IllegalStateException("the cache did not see " + id + " within 30 s");
            }
            if (i >= warmUp) {
                latencies.add(at - started);
            }
            present.set(false);
            awaited.set(id);
            registrar.unregisterService(instance);
            if (seen.poll(30, TimeUnit.SECONDS) == null) {
                throw new IllegalStateException("the cache did not see " + id + " go within 30 s");
            }
        }
        cache.close();
        registrar.close();
        observer.close();
        registrarClient.close();
        observerClient.close();
        Collections.sort(latencies);
        System.out.printf("curator_discovery_visible_median_us %.1f%n", percentile(latencies, 0.5) / 1e3);
        System.out.printf("curator_discovery_visible_p99_us %.1f%n", percentile(latencies, 0.99) / 1e3);
    }

    /**
     * {@code instances} instances of {@link #DISCOVERY_SERVICE} registered on one client; on a
     * second, a started ServiceProvider with a RoundRobinStrategy, whose {@code getInstance()}
     * is called in a loop on this thread for {@code warmUpSeconds} untimed, then for
     * {@code seconds} timed, the clock read every {@code batch} calls: the picks per second.
     */
    private static void providerPick(String connectString, String path, int instances, double warmUpSeconds,
            double seconds, int batch) throws Exception {
        CuratorFramework registrarClient = client(connectString);
        CuratorFramework pickerClient = client(connectString);
        ServiceDiscovery<String> registrar = discovery(registrarClient, path);
        for (int i = 0; i < instances; i++) {
            registrar.registerService(discoveryInstance("instance-" + i));
        }
        ServiceDiscovery<String> picker = discovery(pickerClient, path);
        ServiceProvider<String> provider = picker.serviceProviderBuilder()
                .serviceName(DISCOVERY_SERVICE)
                .providerStrategy(new RoundRobinStrategy<>())
                .build();
        provider.start();
        int held = provider.getAllInstances().size();
        if (held != instances) {
            throw new IllegalStateException("the provider holds " + held + " instances of " + instances);
        }
        // Round robin: one turn gives every instance once.
        Set<String> turn = new HashSet<>();
        for (int i = 0; i < instances; i++) {
            ServiceInstance<String> instance = provider.getInstance();
            if (instance != null) {
                turn.add(instance.getId());
            }
        }
        if (turn.size() != instances) {
            throw new IllegalStateException("one round-robin turn gave " + turn.size() + " distinct instances");
        }
        pickFor(provider, warmUpSeconds, batch);
        long started = System.nanoTime();
        long picks = pickFor(provider, seconds, batch);
        double elapsed = (System.nanoTime() - started) / 1e9;
        System.out.printf("curator_provider_picks_per_s %.0f%n", picks / elapsed);
        provider.close();
        picker.close();
        registrar.close();
        pickerClient.close();
        registrarClient.close();
    }

    /** Calls {@code getInstance()} in batches until {@code seconds} have passed; how many. */
    private static long pickFor(ServiceProvider<String> provider, double seconds, int batch) throws Exception {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        long picks = 0;
        long missed = 0;
        do {
            for (int j = 0; j < batch; j++) {
                if (provider.getInstance() == null) {
                    missed++;
                }
            }
            picks += batch;
        } while (System.nanoTime() < deadline);
        if (missed > 0) {
            throw new IllegalStateException(missed + " of " + picks + " picks gave no instance");
        }
        return picks;
    }

    /**
     * {@code sessions} clients, each with its own DistributedAtomicLong on {@code path} (the
     * optimistic policy {@code RetryNTimes(1000, 0)}, no promotion), loop {@code increment()}
     * on a thread each for {@code warmUpSeconds} untimed, then for {@code seconds} timed: the
     * successful increments per second, the optimistic tries per call, and whether the node's
     * value at the end is the number of successes of both runs (1) or not (0).
     */
    private static void counterContended(String connectString, String path, int sessions, double warmUpSeconds,
            double seconds) throws Exception {
        List<CuratorFramework> clients = new ArrayList<>();
        List<DistributedAtomicLong> counters = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CuratorFramework client = client(connectString);
            clients.add(client);
            counters.add(new DistributedAtomicLong(client, path, new RetryNTimes(1000, 0)));
        }
        long[] warmUp = incrementFor(counters, warmUpSeconds);
        long started = System.nanoTime();
        long[] run = incrementFor(counters, seconds);
        double elapsed = (System.nanoTime() - started) / 1e9;
        long value = counters.get(0).get().postValue();
        long successes = warmUp[1] + run[1];
        System.out.printf("curator_counter_increments_per_s %.1f%n", run[1] / elapsed);
        System.out.printf("curator_counter_tries_per_increment %.2f%n", (double) run[3] / Math.max(1, run[0]));
        System.out.println("curator_counter_gave_up " + (warmUp[2] + run[2]));
        System.out.println("curator_counter_exact " + (value == successes ? 1 : 0));
        if (value != successes) {
            System.err.println("# curator-counter-contended: " + successes + " successful increments, value "
                    + value);
        }
        for (CuratorFramework client : clients) {
            client.close();
        }
    }

    /**
     * Each counter, on a thread of its own, calls {@code increment()} until {@code seconds}
     * have passed: the calls, the successes, the calls that gave up, and the optimistic tries.
     */
    private static long[] incrementFor(List<DistributedAtomicLong> counters, double seconds) throws Exception {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        AtomicLong calls = new AtomicLong();
        AtomicLong succeeded = new AtomicLong();
        AtomicLong gaveUp = new AtomicLong();
        AtomicLong tries = new AtomicLong();
        AtomicReference<Exception> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (DistributedAtomicLong counter : counters) {
            Thread thread = new Thread(() -> {
                try {
                    while (System.nanoTime() < deadline) {
                        AtomicValue<Long> taken = counter.increment();
                        calls.incrementAndGet();
                        tries.addAndGet(taken.getStats().getOptimisticTries());
                        if (taken.succeeded()) {
                            succeeded.incrementAndGet();
                        } else {
                            gaveUp.incrementAndGet();
                        }
                    }
                } catch (Exception e) {
                    failure.compareAndSet(null, e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
        if (failure.get() != null) {
            throw failure.get();
        }
        return new long[] {calls.get(), succeeded.get(), gaveUp.get(), tries.get()};
    }

    private static double percentile(List<Long> sorted, double q) {
        int i = (int) Math.round((sorted.size() - 1) * q);
        return sorted.get(i);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: CuratorBench <connectString> <scenario> <path> [args]");
            System.exit(2);
        }
        switch (args[1]) {
            case "contended":
                contended(args[0], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]));
                break;
            case "selector-handoff":
                selectorHandoff(args[0], args[2], Integer.parseInt(args[3]),
                        args.length > 4 ? Integer.parseInt(args[4]) : 2,
                        args.length > 5 ? args[5] : "curator_selector_handoff");
                break;
            case "scaling-contended":
                for (String sessions : args[3].split(",")) {
                    contended(args[0], args[2] + "-" + sessions, Integer.parseInt(sessions),
                            Double.parseDouble(args[4]), "curator_scaling_contended_" + sessions);
                }
                break;
            case "read-contended":
                readContended(args[0], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]));
                break;
            case "semaphore-contended":
                semaphoreContended(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                        Double.parseDouble(args[5]));
                break;
            case "writer-behind-readers":
                writerBehindReaders(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
                break;
            case "cache-load":
                cacheLoad(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
                break;
            case "cache-latency":
                cacheLatency(args[0], args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]));
                break;
            case "node-recreate":
                nodeRecreate(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                        Long.parseLong(args[5]));
                break;
            case "group-join":
                groupJoin(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
                break;
            case "discovery-visible":
                discoveryVisible(args[0], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
                break;
            case "provider-pick":
                providerPick(args[0], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]),
                        Double.parseDouble(args[5]), Integer.parseInt(args[6]));
                break;
            case "counter-contended":
                counterContended(args[0], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]),
                        Double.parseDouble(args[5]));
                break;
            default:
                System.err.println("unknown scenario " + args[1]);
                System.exit(2);
        }
        System.exit(0);
    }
}
