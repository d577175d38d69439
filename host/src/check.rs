//! `wasmbot check FILE.wasm`: loads one component the way the server
//! would, says whether it implements the plugin contract (and why not),
//! what it declares (name, version, settings and their defaults), what it
//! may reach, and how it answers a sample message.

use crate::config::Config;
use crate::runtime::{WIT_PACKAGE, WIT_VERSION};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Checks `file`; `Ok(report)` when it loads, `Err(report)` when it does not.
pub async fn check(config: &Config, file: &Path, message: &str) -> Result<String, String> {
    let runtime = crate::Server::runtime(config).map_err(|e| format!("error: {e:#}"))?;
    let runtime = Arc::new(runtime);
    let mut out = String::new();
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| format!("error: cannot read {}: {e}", file.display()))?;
    let started = Instant::now();
    let compiled = {
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| format!("error: {e}"))?
    }
    .map_err(|e| format!("error: {}: {e}", file.display()))?;
    let compiled_in = started.elapsed();
    let plugin = runtime
        .load(compiled, |name| config.plugin_settings(name))
        .await
        .map_err(|e| format!("error: {}: {e}", file.display()))?;
    let info = plugin.info();
    let _ = writeln!(
        out,
        "ok: {} implements {WIT_PACKAGE}@{WIT_VERSION}",
        file.display()
    );
    let _ = writeln!(out, "  name:        {}", info.name);
    let _ = writeln!(out, "  version:     {}", info.version);
    let _ = writeln!(out, "  description: {}", info.description);
    let _ = writeln!(out, "  priority:    {}", info.priority);
    let _ = writeln!(out, "  compiled in: {} ms", compiled_in.as_millis());
    if info.settings.is_empty() {
        let _ = writeln!(out, "  settings:    none");
    } else {
        let _ = writeln!(out, "  settings:");
        for s in &info.settings {
            let env = format!(
                "WASMBOT_{}_{}",
                info.name.to_ascii_uppercase().replace('-', "_"),
                s.key.to_ascii_uppercase()
            );
            let _ = writeln!(
                out,
                "    {} = {}   ({}; set with {env})",
                s.key,
                plugin
                    .settings()
                    .get(&s.key)
                    .map_or("(unset)".to_owned(), |v| format!("{v:?}")),
                s.description
            );
        }
    }
    let hosts: Vec<&str> = plugin.allowed_hosts().collect();
    let _ = writeln!(
        out,
        "  may reach:   {}",
        if hosts.is_empty() {
            "no host".to_owned()
        } else {
            hosts.join(", ")
        }
    );
    let grants = plugin.grants();
    let env: Vec<&str> = grants.env.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(
        out,
        "  granted:     env [{}], folder {}",
        env.join(", "),
        grants
            .dir
            .as_ref()
            .map_or("none".to_owned(), |d| format!("{} at /data", d.display()))
    );

    let msg = crate::chat::inbound(message, "whatsapp:+15550001111", 1);
    let started = Instant::now();
    let deadline = started + config.plugin_timeout;
    let result = plugin.handle(&msg, deadline).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let _ = writeln!(out, "\nmessage {message:?} ({took:.1} ms):");
    match result {
        Ok(None) => {
            let _ = writeln!(out, "  (stays silent)");
        }
        Ok(Some(reply)) => {
            if let Some(text) = &reply.text {
                let _ = writeln!(out, "  text:  {text}");
            }
            for url in &reply.media {
                let _ = writeln!(out, "  media: {url}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  failed: {e}");
            return Err(out);
        }
    }
    Ok(out)
}
