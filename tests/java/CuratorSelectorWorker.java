import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.ReentrantLock;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * A Curator 5.x LeaderSelector with autoRequeue, for zk-recipes' interop tests.
 *
 * <p>Usage: {@code CuratorSelectorWorker <connectString> <selectorPath> <id> <counterPath> <workMillis>}
 *
 * <p>Every turn of leadership prints {@code LEADER <id>}, reads the counter node, writes it
 * + 1 (no version: only mutual exclusion keeps updates from being lost), prints
 * {@code INC <id>}, works for {@code workMillis}, prints {@code DONE <id>} and returns, which
 * gives leadership up; autoRequeue queues again.
 *
 * <p>{@code READY} is printed once the selector is started. The command {@code QUIT} on stdin
 * lets a turn under way finish, starts no new one, closes everything and prints {@code BYE}.
 * Failures print {@code ERROR <message>}.
 */
public final class CuratorSelectorWorker {
    private static final Object OUT = new Object();

    private static void say(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            say("ERROR usage: CuratorSelectorWorker <connectString> <selectorPath> <id> <counterPath> <workMillis>");
            System.exit(2);
        }
        String connectString = args[0];
        String selectorPath = args[1];
        String id = args[2];
        String counterPath = args[3];
        long workMillis = Long.parseLong(args[4]);

        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(4000)
                .connectionTimeoutMs(2000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10))
                .build();
        client.start();

        // Held for a whole turn, so QUIT waits for the turn under way to finish.
        ReentrantLock turn = new ReentrantLock();
        boolean[] stopping = {false};

        LeaderSelector selector = new LeaderSelector(client, selectorPath, new LeaderSelectorListenerAdapter() {
            @Override
            public void takeLeadership(CuratorFramework leaderClient) throws Exception {
                turn.lockInterruptibly();
                try {
                    synchronized (stopping) {
                        if (stopping[0]) {
                            return;
                        }
                    }
                    say("LEADER " + id);
                    byte[] data = leaderClient.getData().forPath(counterPath);
                    long value = Long.parseLong(new String(data, StandardCharsets.UTF_8).trim());
                    Thread.sleep(3);
                    leaderClient.setData().forPath(counterPath,
                            Long.toString(value + 1).getBytes(StandardCharsets.UTF_8));
                    say("INC " + id);
                    Thread.sleep(workMillis);
                    say("DONE " + id);
                } catch (InterruptedException e) {
                    say("INTERRUPTED " + id);
                    throw e;
                } catch (Exception e) {
                    say("ERROR " + e.toString().replace('\n', ' '));
                    throw e;
                } finally {
                    turn.unlock();
                }
            }
        });
        selector.setId(id);
        selector.autoRequeue();
        selector.start();
        say("READY");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.trim().equals("QUIT")) {
                break;
            }
            say("ERROR unknown command " + line);
        }
        synchronized (stopping) {
            stopping[0] = true;
        }
        turn.lock();
        try {
            selector.close();
        } finally {
            turn.unlock();
        }
        client.close();
        say("BYE");
        System.exit(0);
    }
}
