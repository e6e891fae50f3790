import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * Curator 5.x LeaderLatches driven over stdin/stdout, for zk-recipes' interop tests.
 *
 * <p>Usage: {@code CuratorLatchWorker <connectString> <latchPath> <idPrefix>}
 *
 * <p>Each <em>slot</em> is a LeaderLatch with id {@code <idPrefix>-<slot>} on a client (so a
 * session) of its own.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code START <slot>}: starts the slot's latch; {@code STARTED <slot>}. Its listener
 *       prints {@code LEADER <slot>} and {@code NOT_LEADER <slot>} on every change.</li>
 *   <li>{@code HAS <slot>}: {@code HAS <slot> true|false}, the latch's hasLeadership().</li>
 *   <li>{@code LEADER}: {@code LEADER_IS <id>} (or {@code LEADER_IS -}), Curator's own view of
 *       the election (getLeader() of a latch on the path that never starts).</li>
 *   <li>{@code CLOSE <slot>}: closes the latch, notifying its listener; {@code CLOSED <slot>}.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR <slot> <message>}. {@code READY} is printed at start.
 */
public final class CuratorLatchWorker {
    private static final Object OUT = new Object();

    private static void say(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    private final String connectString;
    private final String latchPath;
    private final String idPrefix;
    private final Map<String, CuratorFramework> clients = new ConcurrentHashMap<>();
    private final Map<String, LeaderLatch> latches = new ConcurrentHashMap<>();
    private CuratorFramework admin;

    private CuratorLatchWorker(String connectString, String latchPath, String idPrefix) {
        this.connectString = connectString;
        this.latchPath = latchPath;
        this.idPrefix = idPrefix;
    }

    private CuratorFramework newClient() throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(5000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10))
                .build();
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect to " + connectString);
        }
        return client;
    }

    private void start(String slot) throws Exception {
        CuratorFramework client = newClient();
        LeaderLatch latch = new LeaderLatch(client, latchPath, idPrefix + "-" + slot);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                say("LEADER " + slot);
            }

            @Override
            public void notLeader() {
                say("NOT_LEADER " + slot);
            }
        });
        clients.put(slot, client);
        latches.put(slot, latch);
        latch.start();
        say("STARTED " + slot);
    }

    /** Curator's view of the election, through a latch that never starts. */
    private String leader() throws Exception {
        Participant leader = new LeaderLatch(admin, latchPath).getLeader();
        return leader.isLeader() ? leader.getId() : "-";
    }

    private void close(String slot) throws Exception {
        LeaderLatch latch = latches.remove(slot);
        if (latch != null) {
            latch.close(LeaderLatch.CloseMode.NOTIFY_LEADER);
        }
        CuratorFramework client = clients.remove(slot);
        if (client != null) {
            client.close();
        }
        say("CLOSED " + slot);
    }

    private void run() throws Exception {
        admin = newClient();
        say("READY");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] command = line.trim().split("\\s+");
            if (command.length == 0 || command[0].isEmpty()) {
                continue;
            }
            String slot = command.length > 1 ? command[1] : "-";
            try {
                switch (command[0]) {
                    case "START":
                        start(slot);
                        break;
                    case "HAS":
                        LeaderLatch latch = latches.get(slot);
                        say("HAS " + slot + " " + (latch != null && latch.hasLeadership()));
                        break;
                    case "LEADER":
                        say("LEADER_IS " + leader());
                        break;
                    case "CLOSE":
                        close(slot);
                        break;
                    case "QUIT":
                        for (String open : latches.keySet()) {
                            close(open);
                        }
                        admin.close();
                        say("BYE");
                        return;
                    default:
                        say("ERROR " + slot + " unknown command " + command[0]);
                }
            } catch (Exception e) {
                say("ERROR " + slot + " " + e.toString().replace('\n', ' '));
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: CuratorLatchWorker <connectString> <latchPath> <idPrefix>");
            System.exit(2);
        }
        new CuratorLatchWorker(args[0], args[1], args[2]).run();
        System.exit(0);
    }
}
