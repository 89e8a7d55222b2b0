//! The three platforms as the demo's people use and see them. Each person
//! acts through the platform's own API with their own token (Slack's Web
//! API with a user token, Microsoft Graph with a delegated token, the Matrix
//! client-server API with an access token); what only the platform itself
//! does (a huddle) goes through the simulator's admin calls. Each
//! platform's view is read back through the same APIs.

mod matrix;
mod slack;
mod teams;

pub use matrix::MatrixSide;
pub use slack::SlackSide;
pub use teams::TeamsSide;

use super::view::Shown;
use anyhow::Context;
use std::fmt;

/// One of the platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Slack (the simulator).
    Slack,
    /// Microsoft Teams (the simulator).
    Teams,
    /// Matrix (a throw-away Synapse).
    Matrix,
}

impl Side {
    /// Every side, in column order.
    pub const ALL: [Side; 3] = [Side::Slack, Side::Teams, Side::Matrix];

    /// Its name, as in the column headers.
    pub fn name(self) -> &'static str {
        match self {
            Side::Slack => "Slack",
            Side::Teams => "Teams",
            Side::Matrix => "Matrix",
        }
    }

    /// `slack`, `teams` or `matrix` (any case).
    pub fn parse(s: &str) -> Option<Side> {
        Side::ALL
            .into_iter()
            .find(|side| side.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

pub(super) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .context("cannot build an HTTP client")
}

/// Slack's emoji names for the reactions the demo uses.
pub(super) fn emoji_of(name: &str) -> String {
    match name {
        "+1" | "thumbsup" | "like" => "👍".to_owned(),
        "tada" => "🎉".to_owned(),
        "heart" => "❤️".to_owned(),
        other => other.to_owned(),
    }
}

/// The platforms of the demo: Slack and Teams always, Matrix when Synapse
/// runs.
#[derive(Debug)]
pub struct Sides {
    /// Slack.
    pub slack: SlackSide,
    /// Teams.
    pub teams: TeamsSide,
    /// Matrix, when Synapse runs.
    pub matrix: Option<MatrixSide>,
}

impl Sides {
    /// The sides taking part, in column order.
    pub fn active(&self) -> Vec<Side> {
        Side::ALL
            .into_iter()
            .filter(|s| *s != Side::Matrix || self.matrix.is_some())
            .collect()
    }

    /// The Matrix side, or an error saying it is not running.
    pub fn matrix(&self) -> anyhow::Result<&MatrixSide> {
        self.matrix
            .as_ref()
            .context("Matrix is not part of this demo (Synapse is not running)")
    }

    /// What `side` shows now.
    pub async fn view(&self, side: Side) -> anyhow::Result<Vec<Shown>> {
        match side {
            Side::Slack => Ok(self.slack.view()),
            Side::Teams => self.teams.view().await,
            Side::Matrix => self.matrix()?.view().await,
        }
    }
}
