//! A stateful Microsoft Graph simulator (being written).
