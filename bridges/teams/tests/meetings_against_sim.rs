//! Meetings created on request (`Bridge::create_meeting`) against the Graph
//! simulator: organised by the service account or by a person's linked
//! account, idempotent per key, and refused clearly without any account.

mod common;

use common::{BOB, OneLinked, SERVICE, config, graph, seed, sign_in};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::{Bridge, BridgeId, CallProvider, ChannelId, Person, RetryKind, UserId};
use switchboard_teams::bridge::TeamsBridge;
use switchboard_teams_sim::{SimConfig, TeamsSim};

async fn sim() -> TeamsSim {
    TeamsSim::start(SimConfig {
        seed: Some(seed()),
        device_code_interval: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .expect("sim starts")
}

fn channel(sim: &TeamsSim) -> ChannelId {
    let (team, channel) = sim.seeded().channels["Contoso/General"].clone();
    ChannelId::new(format!("{team}/{channel}"))
}

/// Alice on Slack, who linked Bob's Teams account as her own.
fn alice() -> Person {
    Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Alice")
}

/// The simulator's meeting with id `id`, as its Graph renders it.
fn meeting_in_sim(sim: &TeamsSim, id: &str) -> Value {
    sim.online_meetings()
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("meeting {id} not in the simulator"))
}

fn organizer(meeting: &Value) -> &str {
    meeting["participants"]["organizer"]["identity"]["user"]["id"]
        .as_str()
        .expect("an organizer")
}

#[tokio::test]
async fn the_service_account_creates_one_meeting_per_key() {
    let sim = sim().await;
    let service = sign_in(&sim, SERVICE).await;
    let bridge = TeamsBridge::with_graph(config(&sim, Some(service)), graph(&sim)).expect("bridge");
    let ch = channel(&sim);

    let meeting = bridge
        .create_meeting("call-req-1", &ch, "Design review", None)
        .await
        .expect("created")
        .expect("Teams creates meetings");
    assert_eq!(meeting.provider, CallProvider::TeamsMeeting);
    assert!(
        meeting
            .join_url
            .starts_with("https://teams.microsoft.com/l/meetup-join/"),
        "{}",
        meeting.join_url
    );
    let in_sim = meeting_in_sim(&sim, &meeting.id);
    assert_eq!(in_sim["subject"], "Design review");
    assert_eq!(in_sim["externalId"], "call-req-1");
    assert_eq!(in_sim["joinWebUrl"], meeting.join_url.as_str());
    assert_eq!(organizer(&in_sim), sim.seeded().users[SERVICE]);

    let again = bridge
        .create_meeting("call-req-1", &ch, "Design review", None)
        .await
        .expect("retried")
        .expect("a meeting");
    assert_eq!(again, meeting, "a retry returns the same meeting");

    let other = bridge
        .create_meeting("call-req-2", &ch, "", None)
        .await
        .expect("created")
        .expect("a meeting");
    assert_ne!(other.id, meeting.id, "another key, another meeting");
    assert_eq!(sim.online_meetings().len(), 2);
    assert_eq!(meeting_in_sim(&sim, &other.id)["subject"], "Call");
}

#[tokio::test]
async fn a_linked_organiser_organises_the_meeting_themselves() {
    let sim = sim().await;
    let service = sign_in(&sim, SERVICE).await;
    let bob = sign_in(&sim, BOB).await;
    let bridge = TeamsBridge::with_graph(config(&sim, Some(service)), graph(&sim)).expect("bridge");
    bridge.set_accounts(Arc::new(OneLinked::new(alice(), &bob)));
    let ch = channel(&sim);

    let meeting = bridge
        .create_meeting("call-req-7", &ch, "Weekly sync", Some(&alice()))
        .await
        .expect("created")
        .expect("a meeting");
    let in_sim = meeting_in_sim(&sim, &meeting.id);
    assert_eq!(organizer(&in_sim), sim.seeded().users[BOB]);
    assert_eq!(in_sim["subject"], "Weekly sync");

    // Someone who linked nothing: the service account organises.
    let carol = Person::new(BridgeId::new("slack:acme"), UserId::new("U3"), "Carol");
    let theirs = bridge
        .create_meeting("call-req-8", &ch, "Other", Some(&carol))
        .await
        .expect("created")
        .expect("a meeting");
    assert_eq!(
        organizer(&meeting_in_sim(&sim, &theirs.id)),
        sim.seeded().users[SERVICE]
    );

    let again = bridge
        .create_meeting("call-req-7", &ch, "Weekly sync", Some(&alice()))
        .await
        .expect("retried")
        .expect("a meeting");
    assert_eq!(again.id, meeting.id);
}

#[tokio::test]
async fn without_a_service_account_the_error_says_how_to_sign_one_in() {
    let sim = sim().await;
    let bridge = TeamsBridge::with_graph(config(&sim, None), graph(&sim)).expect("bridge");
    let err = bridge
        .create_meeting(
            "call-req-1",
            &channel(&sim),
            "Design review",
            Some(&alice()),
        )
        .await
        .expect_err("no account to organise it");
    assert_eq!(err.retry_kind(), RetryKind::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains("switchboard login teams --service"),
        "{err}"
    );
    assert!(sim.online_meetings().is_empty());
}

#[tokio::test]
async fn an_empty_key_is_refused() {
    let sim = sim().await;
    let service = sign_in(&sim, SERVICE).await;
    let bridge = TeamsBridge::with_graph(config(&sim, Some(service)), graph(&sim)).expect("bridge");
    let err = bridge
        .create_meeting("", &channel(&sim), "Design review", None)
        .await
        .expect_err("an empty key");
    assert_eq!(err.retry_kind(), RetryKind::Permanent, "{err}");
}

/// Several operations for one linked account at once, all having read the
/// stored refresh token before the first of them rotated it: one refresh,
/// and every one acts as the person (a stale copy of a rotated token is not
/// taken for a new sign-in and redeemed again, which Graph refuses).
#[tokio::test]
async fn concurrent_uses_of_a_linked_account_refresh_it_once() {
    let sim = sim().await;
    let service = sign_in(&sim, SERVICE).await;
    let bob = sign_in(&sim, BOB).await;
    let bridge = TeamsBridge::with_graph(config(&sim, Some(service)), graph(&sim)).expect("bridge");
    bridge.set_accounts(Arc::new(OneLinked::new(alice(), &bob)));
    let ch = channel(&sim);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let bridge = bridge.clone();
            let ch = ch.clone();
            tokio::spawn(async move {
                bridge
                    .create_meeting(&format!("call-req-c{i}"), &ch, "At once", Some(&alice()))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let meeting = task
            .await
            .expect("task runs")
            .expect("created")
            .expect("a meeting");
        assert_eq!(
            organizer(&meeting_in_sim(&sim, &meeting.id)),
            sim.seeded().users[BOB],
            "organised by the linked account, not the service account"
        );
    }
}
