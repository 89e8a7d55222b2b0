//! Calls both ways: Matrix call state → [`CallEvent`]s, and other
//! platforms' calls → a widget and a notice in the portal room.
//!
//! # Inbound
//!
//! Pure conversions plus a little memory (per call, in the cursor store under
//! `call|{base id}`, and per Element Call membership slot under
//! `callslot|{room}|{state key}`), so a call's later events know how it
//! started. Echoes (our bot's widgets) never get here: the endpoint drops
//! them first.
//!
//! - **Widgets** (`im.vector.modular.widgets`, state key = widget id) of type
//!   `jitsi`/`m.jitsi` ([`CallProvider::Jitsi`]), `io.element.call`/`m.call`
//!   (`Other("Element Call")`) and `m.custom`/`customwidget`
//!   ([`CallProvider::MatrixWidget`]): added → `Started` (title from `name`,
//!   started by the sender, join link `https://{data.domain}/{data.conferenceId}`
//!   for Jitsi, else the widget `url` with [`resolve_widget_url`]); changed
//!   name or link → `Updated`; removed (empty content, or no longer a call
//!   widget) → `Ended` with the time since it was added. A removal of a
//!   widget we never saw added is ignored (it may not have been a call), as
//!   are widgets carrying `data.switchboard_call` (ours).
//! - **Element Call** (MSC3401): `org.matrix.msc3401.call` (state key = call
//!   id) starts a call (title `m.name`), and ends it once `m.terminated` is
//!   set or the content is emptied. Memberships (`org.matrix.msc3401.call.member`
//!   or `m.call.member`, state key = a user or a user's device) in any of the
//!   shapes clients have used — `memberships: [{call_id, application…}]`,
//!   one membership per device (`{application, call_id, device_id…}`), the
//!   legacy `m.calls: [{m.call_id}]` — and empty when left: the first member
//!   starts the call if nothing did, joins and leaves are `Updated` with the
//!   participants, and the last member leaving ends it (participants then
//!   are everyone who was in it). The room-wide call (`call_id: ""`) is the
//!   usual one. The join link is the room's `matrix.to` link: Element Call
//!   has no URL of its own for a room call. Membership expiry (`expires`) is
//!   not timed: a client that vanishes without emptying its membership
//!   leaves the call open until someone else's leave or a termination.
//!   One membership event touching several calls reports the first change
//!   only (the relay keys events by event id).
//! - **Legacy 1:1 VoIP** (`m.call.invite`): media cannot be bridged, so the
//!   other platforms get one terminal event: `Ended { duration: None }` with
//!   provider `Other("Matrix call")`, no join link, and the title
//!   "{name} tried to call (Matrix voice call cannot be bridged)" ("video"
//!   when the offer's SDP has a video line). `Ended` rather than `Started`:
//!   nobody must be offered a way to join (a `Started` would make the Teams
//!   connector create a meeting), and nothing would ever end it. Hangups and
//!   answers are ignored.
//!
//! Call ids: `matrix:{room id}/widget/{widget id}`, `matrix:{room id}/rtc/{call id
//! or "room"}`, `matrix:{room id}/voip/{call id}`; a widget id or Element
//! Call id used again after its call ended gets `~{start event id}` appended,
//! so every call stays one id, for the life of the store.
//!
//! A transaction the relay failed to store is sent again: an event seen
//! again that was the last one to change a call gives the same answer.
//!
//! # Outbound
//!
//! A call from another platform becomes, in the portal room, a widget state
//! event (type `m.custom`, `url` = the join link, `name` = e.g. "Slack huddle
//! by Alice", `data.switchboard_call` = the call id, state key
//! [`widget_key`] of the call id) so the call opens from the room, and an
//! `m.notice` with the link, both by the bridge bot (it is 100 in the rooms
//! it created; where it may not set state, the widget is skipped). The
//! notice's event id is the invite the relay hands back with later states:
//! updates edit it (participants), the end edits it to say how long the call
//! took and removes the widget (empty content).

use crate::client::enc;
use crate::events::RoomEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use switchboard_model::call::format_duration;
use switchboard_model::{
    BridgeId, CallEvent, CallId, CallProvider, CallState, ChannelId, CursorStore, Person, RichText,
    UserId,
};

/// Widgets (Element's integration manager format).
pub const WIDGETS: &str = "im.vector.modular.widgets";
/// An Element Call (MSC3401) call.
pub const RTC_CALL: &str = "org.matrix.msc3401.call";
/// An Element Call (MSC3401/MSC4143) membership.
pub const RTC_MEMBER: &str = "org.matrix.msc3401.call.member";
/// The stable name of a call membership.
pub const CALL_MEMBER: &str = "m.call.member";
/// A legacy 1:1 VoIP invite.
pub const VOIP_INVITE: &str = "m.call.invite";

/// The product name used for Element Call.
pub const ELEMENT_CALL: &str = "Element Call";

/// True for the event types this module reads. Widgets and Element Call are
/// state events; `m.call.invite` is a room event.
pub fn is_call_event(kind: &str, is_state: bool) -> bool {
    match kind {
        WIDGETS | RTC_CALL | RTC_MEMBER | CALL_MEMBER => is_state,
        VOIP_INVITE => !is_state,
        _ => false,
    }
}

/// The call event a Matrix event means, if any. `sender` is the event's
/// sender as a person; `memory` keeps call state between events.
pub fn inbound(event: &RoomEvent, sender: &Person, memory: &dyn CursorStore) -> Option<CallEvent> {
    let at = Seen {
        event,
        sender,
        memory,
    };
    match (event.kind.as_str(), event.state_key.as_deref()) {
        (VOIP_INVITE, None) => voip_invite(&at),
        (WIDGETS, Some(key)) => widget(&at, key),
        (RTC_CALL, Some(key)) => rtc_call(&at, key),
        (RTC_MEMBER | CALL_MEMBER, Some(key)) => rtc_member(&at, key),
        _ => None,
    }
}

struct Seen<'a> {
    event: &'a RoomEvent,
    sender: &'a Person,
    memory: &'a dyn CursorStore,
}

impl Seen<'_> {
    fn member(&self) -> Member {
        Member {
            user: self.sender.user.as_str().to_owned(),
            name: self.sender.display_name.clone(),
        }
    }

    fn bridge(&self) -> &BridgeId {
        &self.sender.bridge
    }
}

/// A person in a stored call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    user: String,
    name: String,
}

/// What is remembered of one call (or of the calls a widget id / Element Call
/// id has had: `call` is the current one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    /// The current call's id (empty before the first).
    call: String,
    active: bool,
    provider: Option<CallProvider>,
    title: Option<String>,
    join_url: Option<String>,
    started_by: Option<Member>,
    started_at: Option<u64>,
    /// Membership slot (state key) → who.
    #[serde(default)]
    members: BTreeMap<String, Member>,
    /// Everyone who was in the call, first seen first.
    #[serde(default)]
    history: Vec<Member>,
    /// The last event that changed the call, and what it reported.
    last_event: String,
    last_state: Option<CallState>,
}

impl Record {
    fn load(memory: &dyn CursorStore, base: &str) -> Record {
        memory
            .get(&ChannelId::new(format!("call|{base}")))
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    fn save(&self, memory: &dyn CursorStore, base: &str) {
        if let Ok(json) = serde_json::to_string(self) {
            memory.put(&ChannelId::new(format!("call|{base}")), &json);
        }
    }

    /// The answer given the first time `event` was seen, when it was the
    /// last one to change this call.
    fn replay(&self, event: &str, bridge: &BridgeId) -> Option<Option<CallEvent>> {
        (!self.last_event.is_empty() && self.last_event == event).then(|| {
            self.last_state
                .clone()
                .map(|state| self.snapshot(state, bridge))
        })
    }

    /// Starts a new call under `base`, the event `event` at `ts`.
    fn start(&mut self, base: &str, event: &str, ts: Option<u64>, by: Member) {
        let call = if self.call.is_empty() {
            base.to_owned()
        } else {
            format!("{base}~{event}")
        };
        *self = Record {
            call,
            active: true,
            started_by: Some(by),
            started_at: ts,
            ..Record::default()
        };
    }

    fn duration(&self, ts: Option<u64>) -> Option<Duration> {
        match (self.started_at, ts) {
            (Some(start), Some(end)) => Some(Duration::from_millis(end.saturating_sub(start))),
            _ => None,
        }
    }

    fn present(&self) -> Vec<Member> {
        let mut out: Vec<Member> = Vec::new();
        for m in self.members.values() {
            if !out.iter().any(|o| o.user == m.user) {
                out.push(m.clone());
            }
        }
        out
    }

    fn has_user(&self, user: &str) -> bool {
        self.members.values().any(|m| m.user == user)
    }

    fn finish(&mut self, event: &str, state: Option<CallState>) {
        self.last_event = event.to_owned();
        self.last_state = state;
    }

    fn snapshot(&self, state: CallState, bridge: &BridgeId) -> CallEvent {
        let person = |m: &Member| Person::new(bridge.clone(), UserId::new(m.user.clone()), &m.name);
        let ended = matches!(state, CallState::Ended { .. });
        let provider = self.provider.clone().unwrap_or(CallProvider::MatrixWidget);
        let mut call = CallEvent::new(CallId::new(self.call.clone()), provider, state);
        call.title = self.title.clone();
        call.join_url = self.join_url.clone();
        call.started_by = self.started_by.as_ref().map(person);
        let people = if ended && self.members.is_empty() {
            self.history.clone()
        } else {
            self.present()
        };
        call.participants = people.iter().map(person).collect();
        call
    }
}

fn nonempty(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn is_empty_content(content: &Value) -> bool {
    content.as_object().is_none_or(Map::is_empty)
}

// ----- widgets -----

/// The provider of a widget type, when the widget is a call.
fn widget_provider(kind: &str) -> Option<CallProvider> {
    match kind {
        "jitsi" | "m.jitsi" => Some(CallProvider::Jitsi),
        "io.element.call" | "m.call" => Some(CallProvider::Other(ELEMENT_CALL.to_owned())),
        "m.custom" | "customwidget" => Some(CallProvider::MatrixWidget),
        _ => None,
    }
}

/// `(provider, title, join link)` of a call widget's content.
fn widget_call(
    content: &Value,
    room: &str,
    widget: &str,
) -> Option<(CallProvider, Option<String>, Option<String>)> {
    let provider = widget_provider(nonempty(content.get("type"))?)?;
    let data = content.get("data").and_then(Value::as_object);
    if data.is_some_and(|d| d.contains_key("switchboard_call")) {
        return None;
    }
    let jitsi = match (&provider, data) {
        (CallProvider::Jitsi, Some(d)) => jitsi_url(d),
        _ => None,
    };
    let url = jitsi.or_else(|| {
        nonempty(content.get("url")).and_then(|u| resolve_widget_url(u, room, widget, data))
    });
    let title = nonempty(content.get("name")).map(str::to_owned);
    Some((provider, title, url))
}

/// `https://{domain}/{conferenceId}` from a Jitsi widget's `data`.
fn jitsi_url(data: &Map<String, Value>) -> Option<String> {
    let domain = nonempty(data.get("domain"))?;
    let conference = nonempty(data.get("conferenceId"))?;
    if domain.contains(['/', '?', '#', ' ', '@']) {
        return None;
    }
    Some(format!("https://{domain}/{}", enc(conference)))
}

/// A widget URL made joinable from a browser: `$matrix_room_id` and
/// `$matrix_widget_id` become the room and widget ids, `$key` a scalar of the
/// widget's `data`; a query or fragment parameter whose value keeps an
/// unknown placeholder (the viewer's `$matrix_user_id`,
/// `$matrix_display_name`, `$matrix_avatar_url`, client ids and themes…) is
/// dropped, and an unknown placeholder elsewhere removed. Only `http(s)`
/// links are kept.
pub fn resolve_widget_url(
    url: &str,
    room: &str,
    widget: &str,
    data: Option<&Map<String, Value>>,
) -> Option<String> {
    let url = url.trim();
    let scheme_ok = ["https://", "http://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    });
    if !scheme_ok || url.contains(char::is_whitespace) {
        return None;
    }
    let lookup = |name: &str| -> Option<String> {
        match name {
            "matrix_room_id" => Some(room.to_owned()),
            "matrix_widget_id" => Some(widget.to_owned()),
            _ => match data?.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
        }
    };
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = substitute(path, &lookup).0;
    if let Some(q) = query.map(|q| params(q, &lookup)).filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(&q);
    }
    if let Some(f) = fragment {
        let f = if f.contains('=') {
            params(f, &lookup)
        } else {
            substitute(f, &lookup).0
        };
        if !f.is_empty() {
            out.push('#');
            out.push_str(&f);
        }
    }
    Some(out)
}

/// `&`-separated parameters with placeholders resolved; those left with an
/// unknown placeholder, or emptied by one, are dropped.
fn params(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (resolved, complete) = substitute(value, lookup);
            let emptied = !value.is_empty() && resolved.is_empty();
            (complete && !emptied && !key.contains('$')).then(|| {
                if pair.contains('=') {
                    format!("{key}={resolved}")
                } else {
                    key.to_owned()
                }
            })
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Replaces `$name` placeholders (percent-encoded values); unknown ones are
/// removed and reported by `false`.
fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut complete = true;
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        let name = after[..len].trim_end_matches('.');
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match lookup(name) {
            Some(value) => out.push_str(&enc(&value)),
            None => complete = false,
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    (out, complete)
}

fn widget(at: &Seen<'_>, key: &str) -> Option<CallEvent> {
    let event = at.event;
    let base = format!("matrix:{}/widget/{key}", event.room_id);
    let mut rec = Record::load(at.memory, &base);
    if let Some(again) = rec.replay(&event.event_id, at.bridge()) {
        return again;
    }
    let state = match widget_call(&event.content, &event.room_id, key) {
        Some((provider, title, url)) if rec.active => {
            if rec.title == title && rec.join_url == url && rec.provider.as_ref() == Some(&provider)
            {
                None
            } else {
                rec.provider = Some(provider);
                rec.title = title;
                rec.join_url = url;
                Some(CallState::Updated)
            }
        }
        Some((provider, title, url)) => {
            rec.start(&base, &event.event_id, event.ts, at.member());
            rec.provider = Some(provider);
            rec.title = title;
            rec.join_url = url;
            Some(CallState::Started)
        }
        None if rec.active => {
            rec.active = false;
            Some(CallState::Ended {
                duration: rec.duration(event.ts),
            })
        }
        None => return None,
    };
    rec.finish(&event.event_id, state.clone());
    rec.save(at.memory, &base);
    state.map(|s| rec.snapshot(s, at.bridge()))
}

// ----- Element Call -----

fn rtc_base(room: &str, call_id: &str) -> String {
    let id = if call_id.is_empty() { "room" } else { call_id };
    format!("matrix:{room}/rtc/{id}")
}

fn room_link(room: &str) -> String {
    format!("https://matrix.to/#/{room}")
}

fn rtc_call(at: &Seen<'_>, call_id: &str) -> Option<CallEvent> {
    let event = at.event;
    let base = rtc_base(&event.room_id, call_id);
    let mut rec = Record::load(at.memory, &base);
    if let Some(again) = rec.replay(&event.event_id, at.bridge()) {
        return again;
    }
    let content = &event.content;
    let terminated = is_empty_content(content) || content.get("m.terminated").is_some();
    let title = nonempty(content.get("m.name")).map(str::to_owned);
    let state = match (terminated, rec.active) {
        (false, false) => {
            rec.start(&base, &event.event_id, event.ts, at.member());
            rec.provider = Some(CallProvider::Other(ELEMENT_CALL.to_owned()));
            rec.title = title;
            rec.join_url = Some(room_link(&event.room_id));
            Some(CallState::Started)
        }
        (false, true) if title.is_some() && title != rec.title => {
            rec.title = title;
            Some(CallState::Updated)
        }
        (false, true) => None,
        (true, true) => {
            rec.active = false;
            for m in std::mem::take(&mut rec.members).into_values() {
                remember(&mut rec.history, m);
            }
            Some(CallState::Ended {
                duration: rec.duration(event.ts),
            })
        }
        (true, false) => return None,
    };
    rec.finish(&event.event_id, state.clone());
    rec.save(at.memory, &base);
    state.map(|s| rec.snapshot(s, at.bridge()))
}

fn remember(history: &mut Vec<Member>, m: Member) {
    if !history.iter().any(|h| h.user == m.user) {
        history.push(m);
    }
}

/// The call ids a membership event's content is in (`""` for the room's call).
fn membership_calls(content: &Value) -> Vec<String> {
    let is_call = |m: &Value| {
        m.get("application")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "m.call")
    };
    let call_of = |m: &Value, key: &str| {
        m.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(list) = content.get("memberships").and_then(Value::as_array) {
        out.extend(
            list.iter()
                .filter(|m| is_call(m))
                .map(|m| call_of(m, "call_id")),
        );
    } else if let Some(list) = content.get("m.calls").and_then(Value::as_array) {
        out.extend(list.iter().map(|m| call_of(m, "m.call_id")));
    } else if (content.get("application").is_some() || content.get("call_id").is_some())
        && is_call(content)
    {
        out.push(call_of(content, "call_id"));
    }
    out.sort();
    out.dedup();
    out
}

/// What is remembered of one membership slot: the calls it is in, and the
/// last event that changed it with the calls that event touched (so the
/// event seen again touches them again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Slot {
    calls: Vec<String>,
    last_event: String,
    touched: Vec<String>,
}

fn rtc_member(at: &Seen<'_>, slot: &str) -> Option<CallEvent> {
    let event = at.event;
    let room = &event.room_id;
    let slot_key = ChannelId::new(format!("callslot|{room}|{slot}"));
    let now = membership_calls(&event.content);
    let before: Slot = at
        .memory
        .get(&slot_key)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let affected = if before.last_event == event.event_id {
        before.touched.clone()
    } else {
        let mut all = now.clone();
        all.extend(before.calls.iter().cloned());
        all.sort();
        all.dedup();
        all
    };

    let me = at.member();
    let mut first: Option<CallEvent> = None;
    for call_id in &affected {
        let base = rtc_base(room, call_id);
        let mut rec = Record::load(at.memory, &base);
        if let Some(again) = rec.replay(&event.event_id, at.bridge()) {
            first = first.or(again);
            continue;
        }
        let is_in = now.contains(call_id);
        let was_in = rec.active && rec.members.contains_key(slot);
        let state = match (is_in, was_in) {
            (true, false) if !rec.active => {
                rec.start(&base, &event.event_id, event.ts, me.clone());
                rec.provider = Some(CallProvider::Other(ELEMENT_CALL.to_owned()));
                rec.join_url = Some(room_link(room));
                rec.members.insert(slot.to_owned(), me.clone());
                remember(&mut rec.history, me.clone());
                Some(CallState::Started)
            }
            (true, false) => {
                let new_person = !rec.has_user(&me.user);
                rec.members.insert(slot.to_owned(), me.clone());
                remember(&mut rec.history, me.clone());
                new_person.then_some(CallState::Updated)
            }
            (false, true) => {
                rec.members.remove(slot);
                if rec.members.is_empty() {
                    rec.active = false;
                    Some(CallState::Ended {
                        duration: rec.duration(event.ts),
                    })
                } else {
                    (!rec.has_user(&me.user)).then_some(CallState::Updated)
                }
            }
            _ => continue,
        };
        rec.finish(&event.event_id, state.clone());
        rec.save(at.memory, &base);
        if first.is_none() {
            first = state.map(|s| rec.snapshot(s, at.bridge()));
        }
    }
    if before.last_event != event.event_id {
        let slot_state = Slot {
            calls: now,
            last_event: event.event_id.clone(),
            touched: affected,
        };
        if let Ok(json) = serde_json::to_string(&slot_state) {
            at.memory.put(&slot_key, &json);
        }
    }
    first
}

// ----- legacy VoIP -----

fn voip_invite(at: &Seen<'_>) -> Option<CallEvent> {
    let event = at.event;
    let call_id = nonempty(event.content.get("call_id"))?;
    let video = event
        .content
        .pointer("/offer/sdp")
        .and_then(Value::as_str)
        .is_some_and(|sdp| sdp.lines().any(|l| l.starts_with("m=video")));
    let kind = if video { "video" } else { "voice" };
    let mut call = CallEvent::new(
        CallId::new(format!("matrix:{}/voip/{call_id}", event.room_id)),
        CallProvider::Other("Matrix call".to_owned()),
        CallState::Ended { duration: None },
    )
    .with_title(format!(
        "{} tried to call (Matrix {kind} call cannot be bridged)",
        at.sender.display_name
    ));
    call.started_by = Some(at.sender.clone());
    Some(call)
}

// ----- outbound -----

/// The state key of the widget shown for `call`: derived from the call id
/// alone (`switchboard_` and the id with unsafe bytes escaped, or a hash of
/// it when that would be long).
pub fn widget_key(call: &CallId) -> String {
    let mut out = String::from("switchboard_");
    for b in call.as_str().bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!(".{b:02x}"));
        }
    }
    if out.len() <= 200 {
        return out;
    }
    // FNV-1a, 64 bits: stable across processes and versions.
    let hash = call
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("switchboard_h{hash:016x}")
}

/// "Slack huddle", "Teams meeting", "Jitsi call", "Zoom call"…
pub fn provider_noun(provider: &CallProvider) -> String {
    match provider {
        CallProvider::SlackHuddle => "Slack huddle".to_owned(),
        CallProvider::SlackCall => "Slack call".to_owned(),
        CallProvider::TeamsMeeting => "Teams meeting".to_owned(),
        CallProvider::MatrixWidget => "Matrix call".to_owned(),
        CallProvider::Jitsi => "Jitsi call".to_owned(),
        CallProvider::Other(name) => {
            let name = name.trim();
            let lower = name.to_lowercase();
            if name.is_empty() {
                "call".to_owned()
            } else if ["call", "meeting", "huddle", "conference"]
                .iter()
                .any(|w| lower.ends_with(w))
            {
                name.to_owned()
            } else {
                format!("{name} call")
            }
        }
    }
}

fn article(noun: &str) -> &'static str {
    match noun.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// Whom a call is shown as started by.
pub fn who<'a>(event: &'a CallEvent, on_behalf_of: Option<&'a Person>) -> &'a str {
    event
        .started_by
        .as_ref()
        .or(on_behalf_of)
        .map(|p| p.display_name.trim())
        .filter(|n| !n.is_empty())
        .unwrap_or("Someone")
}

/// The join link, when it is one a browser may open.
fn web_link(event: &CallEvent) -> Option<&str> {
    event.join_url.as_deref().map(str::trim).filter(|u| {
        let lower = u.to_ascii_lowercase();
        (lower.starts_with("https://") || lower.starts_with("http://"))
            && !u.contains(char::is_whitespace)
    })
}

/// The widget content for a running call, or `None` when it has no link.
pub fn widget_content(event: &CallEvent, who: &str, bot: &str, key: &str) -> Option<Value> {
    let url = web_link(event)?;
    let mut data = json!({ "switchboard_call": event.call.as_str() });
    if let Some(title) = event.title.as_deref().filter(|t| !t.trim().is_empty()) {
        data["title"] = json!(title);
    }
    Some(json!({
        "type": "m.custom",
        "url": url,
        "name": format!("{} by {who}", provider_noun(&event.provider)),
        "data": data,
        "creatorUserId": bot,
        "id": key,
    }))
}

/// The notice's text for `event`; `duration` stands in when an end does not
/// say how long the call took.
pub fn notice(event: &CallEvent, who: &str, duration: Option<Duration>) -> RichText {
    let noun = provider_noun(&event.provider);
    let title = event
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(&noun))
        .map(|t| format!(" “{t}”"))
        .unwrap_or_default();
    let b = RichText::builder();
    if let CallState::Ended { duration: said } = &event.state {
        let line = match said.or(duration) {
            Some(d) => format!(
                "📞 {who}'s {noun}{title} ended after {}",
                format_duration(d)
            ),
            None => format!("📞 {who}'s {noun}{title} has ended"),
        };
        return b.text(line).build();
    }
    let mut b = b.text(format!("📞 {who} started {} {noun}{title}", article(&noun)));
    b = match web_link(event) {
        Some(url) => b.text(" — join: ").link(url, url),
        None => b.text(" (no join link)"),
    };
    if !event.participants.is_empty() {
        const SHOWN: usize = 20;
        let names: Vec<&str> = event
            .participants
            .iter()
            .take(SHOWN)
            .map(|p| p.display_name.as_str())
            .collect();
        let more = event.participants.len().saturating_sub(SHOWN);
        let mut line = format!(
            "In the call ({}): {}",
            event.participants.len(),
            names.join(", ")
        );
        if more > 0 {
            line.push_str(&format!(" and {more} more"));
        }
        b = b.line_break().text(line);
    }
    b.build()
}

#[cfg(test)]
mod tests;
