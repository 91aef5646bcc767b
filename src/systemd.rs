//! systemd service notifications (`Type=notify`): `READY=1` once listeners
//! are bound and the pipeline runs, `RELOADING=1` with `MONOTONIC_USEC` and
//! `READY=1` around a reload, `STOPPING=1` at shutdown, and `WATCHDOG=1`
//! pings when the unit sets `WatchdogSec`. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

/// The pipeline is running: systemd may consider the service started.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A reload starts. systemd ≥ 253 requires `MONOTONIC_USEC` with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(e) => {
            tracing::debug!(error = %e, "Could not read CLOCK_MONOTONIC; sending RELOADING=1 alone.");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// Shutdown has begun (SIGTERM, SIGINT, or every source ended).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Starts pinging the watchdog at half the interval systemd asked for, from
/// a task on the runtime: pings stop if the runtime stops scheduling tasks,
/// and systemd then restarts the agent. `None` when no watchdog is set.
pub fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(
        interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        "systemd watchdog enabled."
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

fn send(states: &[NotifyState<'_>]) {
    // A failed notification must not stop the agent; systemd will time the
    // service out if it matters, and the journal shows why.
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "Could not notify systemd.");
    }
}
