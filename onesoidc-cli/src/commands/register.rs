//! `register`: a new identity, approved by an administrator.

use std::time::Duration;

use onesoidc_flows::{
    DeviceRegistration, RegistrationProgress, create_unmanaged_identity, register_device,
};
use serde_json::json;
use tokio::time::Instant;

use crate::cli::GlobalArgs;
use crate::output::{Failure, minutes_seconds, print_json, say, spinner};

pub async fn register(g: &GlobalArgs, registration: &DeviceRegistration) -> Result<(), Failure> {
    let mut interrupt = crate::output::Interrupt::listen();
    let identity = if registration.host.is_none() {
        create_unmanaged_identity(registration)?
    } else {
        let http = super::http(g)?;
        let bar = spinner(g.json);
        let deadline = std::cell::Cell::new(None::<Instant>);
        let show = |bar: &indicatif::ProgressBar, deadline: Option<Instant>| {
            if let Some(d) = deadline {
                let left = minutes_seconds(d.saturating_duration_since(Instant::now()));
                bar.set_message(format!(
                    "Waiting for an administrator to approve ({left} left)"
                ));
            }
        };
        let flow = register_device(http, registration, |progress| match progress {
            RegistrationProgress::Submitted {
                verification_code,
                timeout,
            } => {
                deadline.set(Instant::now().checked_add(timeout));
                bar.suspend(|| {
                    if g.json {
                        print_json(
                            &json!({"event": "submitted", "verification_code": verification_code}),
                        );
                    } else {
                        eprintln!();
                        eprintln!("  Verification code:  {verification_code}");
                        eprintln!();
                        eprintln!(
                            "  Ask an administrator of {} to approve this code.",
                            registration.domain.as_deref().unwrap_or("the domain")
                        );
                        eprintln!();
                    }
                });
            }
            RegistrationProgress::Waiting { .. } => show(&bar, deadline.get()),
            _ => {}
        });
        tokio::pin!(flow);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let result = loop {
            tokio::select! {
                result = &mut flow => break result.map_err(Failure::from),
                _ = tick.tick() => show(&bar, deadline.get()),
                _ = interrupt.recv() => break Err(Failure::cancelled()),
            }
        };
        bar.finish_and_clear();
        result?
    };
    let config = &identity.config;
    if g.json {
        print_json(&json!({
            "device_id": config.id,
            "client_id": config.client_id,
            "host": config.host,
            "config": config.path,
            "key_dir": registration.paths.key_dir,
            "key_type": config.key_type.to_string(),
        }));
    } else {
        match &config.client_id {
            Some(client_id) => say(
                false,
                &format!("Registered device {} (client id {client_id}).", config.id),
            ),
            None => say(
                false,
                &format!("Created unmanaged device identity {}.", config.id),
            ),
        }
        say(
            false,
            &format!(
                "Identity: {}; keys in {}",
                config.path.display(),
                registration.paths.key_dir.display()
            ),
        );
    }
    Ok(())
}
