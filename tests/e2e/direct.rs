//! Direct messages across platforms through the real daemon, the Slack
//! simulator and the Teams simulator: `/switchboard dm <name>` in Slack
//! opens a direct portal between the person's IM with the Switchboard app
//! and a one-on-one chat of the Teams service account with the person
//! found; replies flow both ways, as the people who wrote them, and the
//! portal survives a restart. `dm <name>` written to the service account in
//! Teams does the same the other way, and takes over the Slack IM from the
//! older direct portal, whose Teams side is told.

use crate::support::*;
use crate::teams::{ANN, BOB, SERVICE, TeamsSetup, assert_no_token_in_clear, author, content};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Polls `find` until it gives a value; on a timeout, fails with the
/// daemon's log.
fn wait_value<T>(
    t: &TeamsSetup,
    what: &str,
    limit: Duration,
    mut find: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = find() {
            return found;
        }
        if Instant::now() >= deadline {
            let log = t.setup().log();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("Graph call."))
                .rev()
                .take(40)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("timed out waiting for: {what}\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Slack and Teams simulators, the daemon with the service account signed in.
fn start() -> (TeamsSetup, Daemon) {
    let t = TeamsSetup::new();
    t.write_config();
    t.login(&["--service"], SERVICE);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(WAIT);
    (t, daemon)
}

/// What alice's IM with the app holds: (posted by the app, username, text).
fn alice_im(t: &TeamsSetup) -> Vec<(bool, String, String)> {
    t.slack
        .sim
        .app_im_messages("alice")
        .expect("alice's IM")
        .into_iter()
        .map(|m| {
            (
                m.get("bot_id").is_some(),
                m["username"].as_str().unwrap_or_default().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn find_in_im(t: &TeamsSetup, text: &str) -> Option<(bool, String, String)> {
    alice_im(t).into_iter().find(|(_, _, m)| m.contains(text))
}

fn find_in_chat(t: &TeamsSetup, chat: &str, text: &str) -> Option<Value> {
    t.chat_messages(chat)
        .into_iter()
        .find(|m| content(m).contains(text))
}

#[test]
fn slack_and_teams_people_talk_in_direct_portals() {
    let started = Instant::now();
    let (t, mut daemon) = start();
    let room = t.room();

    // Alice asks in the public channel; everything happens in her IM.
    {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .run_slash_command(&room, "alice", "/switchboard", "dm Bob Builder")
            .expect("alice runs the command");
    }
    let bob_chat = t.sim.direct_chat(SERVICE, BOB).expect("Bob's chat");
    let told = wait_value(&t, "Bob told in Teams", WAIT, || {
        find_in_chat(&t, &bob_chat, "started a direct conversation with you")
    });
    assert!(content(&told).contains("Alice Liddell (Slack)"), "{told}");
    let (by_app, _, text) = wait_value(&t, "alice told in her IM", WAIT, || {
        find_in_im(&t, "You are now connected with Bob Builder (Teams)")
    });
    assert!(by_app, "{text}");
    let public: Vec<Value> = t.slack.sim.messages(&room);
    assert!(
        public
            .iter()
            .all(|m| !m["text"].as_str().unwrap_or("").contains("connected")),
        "nothing in the public channel: {public:?}"
    );

    // Both ways, as the people who wrote them.
    t.sim
        .post_chat_message_as(BOB, &bob_chat, "<p>hi Alice, Bob here</p>")
        .expect("Bob writes");
    let (by_app, username, _) = wait_value(&t, "Bob's message in alice's IM", WAIT, || {
        find_in_im(&t, "hi Alice, Bob here")
    });
    assert!(by_app);
    assert_eq!(username, "Bob Builder (Teams)");
    {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .message_app("alice", "hello Bob")
            .expect("alice writes");
    }
    let relayed = wait_value(&t, "alice's message in Bob's chat", WAIT, || {
        find_in_chat(&t, &bob_chat, "hello Bob")
    });
    assert!(
        author(&relayed).contains("Alice Liddell") || content(&relayed).contains("Alice Liddell"),
        "shown as alice: {relayed}"
    );

    // The portal persists across a restart.
    daemon.kill9();
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(WAIT);
    t.sim
        .post_chat_message_as(BOB, &bob_chat, "<p>still there after the restart</p>")
        .expect("Bob writes again");
    wait_value(&t, "Bob's message after the restart", WAIT, || {
        find_in_im(&t, "still there after the restart")
    });

    // Ann asks the service account in Teams: alice's IM moves to her, and
    // Bob is told his conversation is closed.
    let ann_chat = t.sim.direct_chat(SERVICE, ANN).expect("Ann's chat");
    t.sim
        .post_chat_message_as(ANN, &ann_chat, "<p>dm Alice</p>")
        .expect("Ann asks");
    wait_value(&t, "Ann told she is connected", WAIT, || {
        find_in_chat(
            &t,
            &ann_chat,
            "You are now connected with Alice Liddell (Slack)",
        )
    });
    wait_value(&t, "alice told Ann is there", WAIT, || {
        find_in_im(&t, "Ann Lee (Teams) started a direct conversation with you")
    });
    wait_value(&t, "Bob told his conversation closed", WAIT, || {
        find_in_chat(&t, &bob_chat, "This direct conversation is closed")
    });
    {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .message_app("alice", "hi Ann")
            .expect("alice answers");
    }
    wait_value(&t, "alice's answer reaches Ann", WAIT, || {
        find_in_chat(&t, &ann_chat, "hi Ann")
    });
    // Nothing reaches Bob any more, and the command was relayed nowhere.
    std::thread::sleep(Duration::from_secs(1));
    assert!(find_in_chat(&t, &bob_chat, "hi Ann").is_none());
    assert!(find_in_im(&t, "dm Alice").is_none());
    daemon.kill9();
    eprintln!("direct portals checked in {:?}", started.elapsed());
}

/// A Matrix person opens a DM with the ghost of a Slack person (Element's
/// "start chat" with `@slack_…`): the ghost joins, the Slack person's IM
/// with the app becomes the other side, and both talk through it.
#[test]
fn a_matrix_dm_with_a_slack_ghost_reaches_the_slack_person() {
    use serde_json::json;
    let (three, mut daemon) = crate::everywhere::OnePortal::start();
    let (t, hs, portal_room) = (&three.t, &three.hs, three.room.clone());
    // Slack's Alice speaks in the portal: her ghost appears in Matrix.
    t.slack
        .post(&t.slack.alice(), &t.room(), "hello from Slack");
    let read = |room: &str| -> Vec<Value> {
        let mut events = t.slack.rt.block_on(hs.alice.messages(room)).expect("read");
        events.reverse();
        events
    };
    let ghost = wait_value(t, "Alice's ghost in the portal room", WAIT, || {
        read(&portal_room)
            .into_iter()
            .find(|e| e["content"]["body"] == "hello from Slack")
            .and_then(|e| e["sender"].as_str().map(str::to_owned))
    });
    assert!(ghost.contains("slack_"), "a Slack ghost: {ghost}");

    // The Matrix alice opens a DM with the ghost.
    let dm = t
        .slack
        .rt
        .block_on(hs.alice.create_room(json!({
            "preset": "trusted_private_chat",
            "is_direct": true,
            "invite": [ghost],
        })))
        .expect("create the DM");
    // She writes at once, before the ghost has even joined.
    t.slack
        .rt
        .block_on(hs.alice.send_text(&dm, "first words at once"))
        .expect("send");
    let notice = |room: &str, text: &str| {
        read(room).into_iter().find(|e| {
            e["content"]["msgtype"] == "m.notice"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(text))
        })
    };
    wait_value(t, "the DM connected", WAIT, || {
        notice(&dm, "You are now connected with Alice Liddell (Slack)")
    });
    let (by_app, _, _) = wait_value(t, "Slack's Alice told in her IM", WAIT, || {
        find_in_im(t, "(Matrix) started a direct conversation with you")
    });
    assert!(by_app);
    // The ghost joined the DM.
    wait_value(t, "the ghost in the DM", WAIT, || {
        read(&dm)
            .into_iter()
            .any(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == ghost.as_str()
                    && e["content"]["membership"] == "join"
            })
            .then_some(())
    });

    // Both ways; the first words came through too, first.
    t.slack
        .rt
        .block_on(hs.alice.send_text(&dm, "hi from Matrix"))
        .expect("send");
    wait_value(t, "the Matrix message in Slack's IM", WAIT, || {
        find_in_im(t, "hi from Matrix")
    });
    let im: Vec<String> = alice_im(t).into_iter().map(|(_, _, text)| text).collect();
    let first = im.iter().position(|m| m.contains("first words at once"));
    let then = im.iter().position(|m| m.contains("hi from Matrix"));
    assert!(
        first.is_some() && first < then,
        "the first words, once, before the next: {im:?}"
    );
    assert_eq!(
        im.iter()
            .filter(|m| m.contains("first words at once"))
            .count(),
        1
    );
    {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .message_app("alice", "hi back from Slack")
            .expect("alice answers");
    }
    let answer = wait_value(t, "the Slack answer in the DM", WAIT, || {
        read(&dm)
            .into_iter()
            .find(|e| e["content"]["body"] == "hi back from Slack")
    });
    assert_eq!(answer["sender"], ghost.as_str(), "posted by her ghost");
    daemon.kill9();
}

/// `login teams` from Slack: the answer in alice's IM tells her where to
/// go and which code to enter; once she signed in there (as Ann), she is
/// told so in the same IM and what she writes in Slack appears in Teams as
/// Ann's own account, without the service account's author line. A
/// platform that is not there, or her own, gets a clear answer.
#[test]
fn login_teams_from_a_slack_im_links_the_person_s_own_account() {
    let (t, mut daemon) = start();
    let room = t.room();
    let command = |text: &str| {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .run_slash_command(&room, "alice", "/switchboard", text)
            .expect("alice runs the command");
    };

    command("login nowhere");
    let (_, _, refused) = wait_value(&t, "the unknown platform answered", WAIT, || {
        find_in_im(&t, "No other platform \"nowhere\"")
    });
    assert!(
        refused.contains("teams:contoso"),
        "names the choices: {refused}"
    );
    command("login slack");
    wait_value(&t, "her own platform answered", WAIT, || {
        find_in_im(&t, "No other platform \"slack\"")
    });

    command("login teams");
    let (by_app, _, prompt) = wait_value(&t, "the sign-in instructions", WAIT, || {
        find_in_im(&t, "enter the code ")
    });
    assert!(by_app, "{prompt}");
    assert!(
        prompt.contains(&format!("{}/devicelogin", t.sim.base_url())),
        "{prompt}"
    );
    let code = prompt
        .split_once("enter the code ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("a code");
    t.sim
        .complete_device_code(code, ANN)
        .expect("alice signs in as Ann");
    let ann = t.user_id(ANN);
    let (_, _, linked) = wait_value(&t, "told it is done", WAIT, || {
        find_in_im(&t, "Linked: what you write now appears on Teams")
    });
    assert!(linked.contains(&ann), "{linked}");
    assert!(
        alice_im(&t).iter().all(|(_, _, m)| !m.contains("refresh")),
        "no token in the IM"
    );

    let alice = t.slack.alice();
    t.slack.post(&alice, &room, "now as Ann herself");
    let posted = wait_value(&t, "posted in Teams as Ann", WAIT, || {
        t.teams_message("now as Ann herself")
    });
    assert_eq!(author(&posted), ann, "{posted}");
    assert!(
        !content(&posted).contains("<b>Alice Liddell</b>"),
        "no author line: {posted}"
    );
    assert_no_token_in_clear(t.setup());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// `login slack` written to the service account in Teams: the answer holds
/// the Slack authorize link; once the person approved it (as alice's Slack
/// account), Slack sends the browser back to the daemon's own listener
/// (`public_url`), the daemon exchanges the code, and the person is told in
/// the same chat. What Ann writes in Teams then appears in Slack as
/// alice's own account, not as a puppet.
#[test]
fn login_slack_from_a_teams_chat_links_through_the_daemon_s_listener() {
    let mut t = TeamsSetup::new();
    let seeded = t.slack.sim.seeded().clone();
    t.slack_extra = format!(
        "{}\npublic_url = \"http://{}\"",
        crate::slack::oauth_lines(&t.slack.sim),
        t.setup().listen
    );
    t.write_config();
    t.login(&["--service"], SERVICE);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(WAIT);

    let ann_chat = t.sim.direct_chat(SERVICE, ANN).expect("Ann's chat");
    t.sim
        .post_chat_message_as(ANN, &ann_chat, "<p>login slack</p>")
        .expect("Ann asks");
    let prompt = wait_value(&t, "the authorize link", WAIT, || {
        find_in_chat(&t, &ann_chat, "approve Switchboard")
    });
    let html = content(&prompt);
    let start = html.find("http").expect("a link");
    let url: String = html[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
        .collect::<String>()
        .replace("&amp;", "&");
    assert!(url.contains("/oauth/v2/authorize?"), "{url}");
    let redirect =
        format!("http%3A%2F%2F{}%2Fslack%2Fsim%2Foauth", t.setup().listen).replace(':', "%3A");
    assert!(url.contains(&redirect), "the daemon's own listener: {url}");

    // A browser coming back with a state nobody started is turned away.
    let (status, _) = crate::slack::get_location(&format!(
        "http://{}/slack/sim/oauth?code=x&state=forged",
        t.setup().listen
    ))
    .expect("the daemon answers");
    assert_eq!(status, 400);

    let alice_id = seeded.users["alice"].clone();
    let approve = format!(
        "{}&user={alice_id}",
        url.replace("/oauth/v2/authorize?", "/oauth/v2/authorize/approve?")
    );
    let (status, location) = crate::slack::get_location(&approve).expect("the simulator");
    assert_eq!(status, 302);
    let (status, _) =
        crate::slack::get_location(&location.expect("back to the daemon")).expect("the daemon");
    assert_eq!(status, 200);
    let linked = wait_value(&t, "Ann told it is done", WAIT, || {
        find_in_chat(&t, &ann_chat, "Linked: what you write now appears on Slack")
    });
    assert!(content(&linked).contains(&alice_id), "{linked}");

    t.as_person(ANN, None, "<p>now as alice herself</p>");
    let posted = wait_value(&t, "posted in Slack as alice", WAIT, || {
        t.slack_message("now as alice herself")
    });
    assert_eq!(posted["user"].as_str(), Some(alice_id.as_str()), "{posted}");
    assert!(posted.get("username").is_none(), "not a puppet: {posted}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// Double puppeting: Slack's Alice runs `login matrix`, gets a code, and
/// sends `link <code>` to the bot from the Matrix account she links; from
/// then on what she writes in Slack appears in the Matrix portal room as
/// that account (posted through the double-puppeting registration), not
/// as her ghost, and its echo is neither relayed back nor doubled.
#[test]
fn login_matrix_from_slack_links_a_matrix_account_for_double_puppeting() {
    use serde_json::json;
    let (three, mut daemon) = crate::everywhere::OnePortal::start();
    let (t, hs, portal_room) = (&three.t, &three.hs, three.room.clone());
    let room = t.room();
    {
        let _runtime = t.slack.rt.enter();
        t.slack
            .sim
            .run_slash_command(&room, "alice", "/switchboard", "login matrix")
            .expect("alice runs the command");
    }
    let (_, _, prompt) = wait_value(t, "the link code", WAIT, || find_in_im(t, "send link "));
    let code = prompt
        .split_once("send link ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("a code")
        .to_owned();
    let bot = format!("@switchboard:{}", hs.synapse.server_name);
    assert!(prompt.contains(&bot), "names the bot: {prompt}");

    // From the Matrix account: a direct chat with the bot, then the code.
    let manage = t
        .slack
        .rt
        .block_on(hs.alice.create_room(json!({
            "preset": "trusted_private_chat",
            "is_direct": true,
            "invite": [bot],
        })))
        .expect("a room with the bot");
    let read =
        |room: &str| -> Vec<Value> { t.slack.rt.block_on(hs.alice.messages(room)).expect("read") };
    wait_value(t, "the bot in the room", WAIT, || {
        read(&manage)
            .into_iter()
            .any(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == bot.as_str()
                    && e["content"]["membership"] == "join"
            })
            .then_some(())
    });
    t.slack
        .rt
        .block_on(hs.alice.send_text(&manage, &format!("link {code}")))
        .expect("send the code");
    let answer = wait_value(t, "the bot's answer", WAIT, || {
        read(&manage).into_iter().find(|e| {
            e["content"]["msgtype"] == "m.notice"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("Linked"))
        })
    });
    assert!(
        answer["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains(hs.alice.user_id.as_str())),
        "{answer}"
    );
    let (_, _, linked) = wait_value(t, "told in Slack", WAIT, || {
        find_in_im(t, "Linked: what you write now appears on Matrix")
    });
    assert!(linked.contains(hs.alice.user_id.as_str()), "{linked}");

    t.slack
        .post(&t.slack.alice(), &room, "as my own Matrix account");
    let shown = wait_value(t, "shown in Matrix as alice's account", WAIT, || {
        read(&portal_room)
            .into_iter()
            .find(|e| e["content"]["body"] == "as my own Matrix account")
    });
    assert_eq!(shown["sender"], hs.alice.user_id.as_str(), "{shown}");
    let teams = wait_value(t, "relayed to Teams once", WAIT, || {
        t.teams_message("as my own Matrix account")
    });
    assert!(content(&teams).contains("Alice"), "{teams}");
    // The echo of the double-puppeted post comes back from Synapse as
    // alice's own event: it must not travel on as a new message.
    std::thread::sleep(Duration::from_secs(2));
    let in_slack = t
        .slack
        .sim
        .messages(&room)
        .into_iter()
        .filter(|m| m["text"] == "as my own Matrix account")
        .count();
    assert_eq!(in_slack, 1, "no echo back into Slack");
    let in_teams = t
        .teams_messages()
        .into_iter()
        .filter(|m| content(m).contains("as my own Matrix account"))
        .count();
    assert_eq!(in_teams, 1, "not twice in Teams");
    let in_matrix = read(&portal_room)
        .into_iter()
        .filter(|e| e["content"]["body"] == "as my own Matrix account")
        .count();
    assert_eq!(in_matrix, 1);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}
