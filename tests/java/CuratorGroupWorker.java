import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.nodes.GroupMember;
import org.apache.curator.utils.ZKPaths;

/**
 * Curator 5.x GroupMembers driven over stdin/stdout, for zk-recipes' group membership interop
 * tests.
 *
 * <p>Usage: {@code CuratorGroupWorker <connectString> <membershipPath>}
 *
 * <p>Each <em>slot</em> is a separate member: its own CuratorFramework (so its own session)
 * and its own GroupMember, whose id is the slot's name. Commands are quick, so they run on the
 * main loop, one at a time. A payload is the rest of the command line (words joined by single
 * spaces, empty if there is none), as UTF-8.
 *
 * <p>Commands (one per line on stdin), and what is printed on stdout:
 * <ul>
 *   <li>{@code JOIN <id> <payload>}: a new client and a started
 *       {@code GroupMember(client, membershipPath, id, payload)}; {@code JOINED <id>} once the
 *       node {@code <membershipPath>/<id>} exists on the server (polled every 20 ms, at most
 *       30 s).</li>
 *   <li>{@code PAYLOAD <id> <payload>}: the member's {@code setThisData}; {@code PAYLOADED <id>}.</li>
 *   <li>{@code MEMBERS <id>}: that member's {@code getCurrentMembers()}, sorted by id:
 *       {@code MEMBERS <id> <id1>=<payload1>,<id2>=<payload2>,...} ({@code MEMBERS <id>} alone
 *       when it is empty).</li>
 *   <li>{@code LEAVE <id>}: closes the member, then its client; {@code LEFT <id>}.</li>
 *   <li>{@code CRASH <id>}: closes only the member's client (its session ends, so its ephemeral
 *       node goes without an explicit delete); {@code CRASHED <id>}.</li>
 *   <li>{@code SESSION <id>}: {@code SESSION <id> <hex session id>} of the member's client.</li>
 *   <li>{@code QUIT}: close everything; {@code BYE}.</li>
 * </ul>
 * Failures print {@code ERROR - <message>}. {@code READY} is printed at start.
 */
public final class CuratorGroupWorker extends CuratorWorker {
    private final String connectString;
    private final String membershipPath;
    private final Map<String, Member> members = new ConcurrentHashMap<>();
    /** Members whose client was closed under them by {@code CRASH}; closed at {@code QUIT}. */
    private final List<Member> crashed = new ArrayList<>();
    private CuratorFramework admin;

    private CuratorGroupWorker(String connectString, String membershipPath) {
        this.connectString = connectString;
        this.membershipPath = membershipPath;
    }

    /** One member: its own client and its GroupMember. */
    private static final class Member {
        final String id;
        final CuratorFramework client;
        final GroupMember member;

        Member(String id, CuratorFramework client, GroupMember member) {
            this.id = id;
            this.client = client;
            this.member = member;
        }
    }

    /** The payload of a command: its words from the third on, as UTF-8. */
    private static byte[] payload(String[] command) {
        String text = command.length > 2 ? String.join(" ", Arrays.copyOfRange(command, 2, command.length)) : "";
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static String id(String[] command) {
        if (command.length < 2) {
            throw new IllegalArgumentException(command[0] + " needs a member id");
        }
        return command[1];
    }

    private Member member(String id) {
        Member member = members.get(id);
        if (member == null) {
            throw new IllegalStateException("no member " + id);
        }
        return member;
    }

    private void run() throws Exception {
        admin = startClient(connectString, null);
        serve(admin, connectString);
    }

    private void join(String id, byte[] payload) throws Exception {
        if (members.containsKey(id)) {
            throw new IllegalStateException("member " + id + " has already joined");
        }
        CuratorFramework client = startClient(connectString, null);
        GroupMember member = null;
        try {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("member " + id + " could not connect to " + connectString);
            }
            member = new GroupMember(client, membershipPath, id, payload);
            member.start();
            String path = ZKPaths.makePath(membershipPath, id);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (client.checkExists().forPath(path) == null) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("node " + path + " did not appear within 30 s");
                }
                Thread.sleep(20);
            }
        } catch (Exception e) {
            if (member != null) {
                closeQuietly(member);
            }
            client.close();
            throw e;
        }
        members.put(id, new Member(id, client, member));
        say("JOINED " + id);
    }

    private String view(Member member) {
        Map<String, byte[]> current = new TreeMap<>(member.member.getCurrentMembers());
        List<String> entries = new ArrayList<>();
        for (Map.Entry<String, byte[]> entry : current.entrySet()) {
            byte[] data = entry.getValue();
            entries.add(entry.getKey() + "=" + (data == null ? "" : new String(data, StandardCharsets.UTF_8)));
        }
        return String.join(",", entries);
    }

    @Override
    boolean handle(String[] command) throws Exception {
        switch (command[0]) {
            case "JOIN": {
                join(id(command), payload(command));
                return true;
            }
            case "PAYLOAD": {
                String id = id(command);
                member(id).member.setThisData(payload(command));
                say("PAYLOADED " + id);
                return true;
            }
            case "MEMBERS": {
                String id = id(command);
                String view = view(member(id));
                say(view.isEmpty() ? "MEMBERS " + id : "MEMBERS " + id + " " + view);
                return true;
            }
            case "LEAVE": {
                String id = id(command);
                Member member = member(id);
                members.remove(id);
                member.member.close();
                member.client.close();
                say("LEFT " + id);
                return true;
            }
            case "CRASH": {
                String id = id(command);
                Member member = member(id);
                members.remove(id);
                crashed.add(member);
                member.client.close();
                say("CRASHED " + id);
                return true;
            }
            case "SESSION": {
                String id = id(command);
                long session = member(id).client.getZookeeperClient().getZooKeeper().getSessionId();
                say("SESSION " + id + " " + Long.toHexString(session));
                return true;
            }
            default:
                return false;
        }
    }

    /** Closes a GroupMember, ignoring what its (possibly closed) client throws. */
    private static void closeQuietly(GroupMember member) {
        try {
            member.close();
        } catch (RuntimeException e) {
            // Its client is already closed (CRASH): nothing more to undo.
        }
    }

    @Override
    void quit() {
        for (Member member : members.values()) {
            closeQuietly(member.member);
            member.client.close();
        }
        members.clear();
        for (Member member : crashed) {
            closeQuietly(member.member);
        }
        crashed.clear();
        admin.close();
        say("BYE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CuratorGroupWorker <connectString> <membershipPath>");
            System.exit(2);
        }
        new CuratorGroupWorker(args[0], args[1]).run();
        System.exit(0);
    }
}
