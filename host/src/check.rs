//! `wasmbot check FILE.wasm`: loads one component the way the server
//! would, says whether it implements the plugin contract (and why not),
//! its id (from the file name), what it declares (name, version, triggers,
//! settings and their defaults), which hosts it asks for, what the operator granted
//! it and by which setting, the exact line that would grant what is
//! missing, and how it answers a sample message.

use crate::config::Config;
use crate::policy::PluginId;
use crate::runtime::WIT_PACKAGE;
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
    let resources = compiled.resources();
    let id = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("error: {} is not a file", file.display()))
        .and_then(|name| PluginId::from_file(&name).map_err(|e| format!("error: {e}")))?;
    let policy = config.policy().map_err(|e| format!("error: {e}"))?;
    let plugin = runtime
        .load(compiled, |info| policy.grant(&id, &info.declared()))
        .await
        .map_err(|e| format!("error: {}: {e}", file.display()))?;
    let info = plugin.info();
    let grant = plugin.grant();
    let _ = writeln!(
        out,
        "ok: {} implements {WIT_PACKAGE}@{}",
        file.display(),
        plugin.contract()
    );
    let _ = writeln!(
        out,
        "  id:          {id}   (from the file name: settings and grants are keyed by it)"
    );
    let _ = writeln!(out, "  name:        {}", info.name);
    if info.name != id.as_str() {
        let _ = writeln!(
            out,
            "  warning:     it calls itself {:?}, but as {} it is {id:?} and gets {id:?}'s \
             settings and grants",
            info.name,
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let _ = writeln!(out, "  version:     {}", info.version);
    let _ = writeln!(out, "  description: {}", info.description);
    let _ = writeln!(out, "  priority:    {}", info.priority);
    let triggers: Vec<String> = info.triggers.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "  triggers:    {}", triggers.join(", "));
    let _ = writeln!(out, "  compiled in: {} ms", compiled_in.as_millis());
    if let Some(r) = resources {
        let _ = writeln!(
            out,
            "  instance:    {} memory(ies), {:.1} MiB at start, {} table(s)",
            r.memories,
            r.initial_memory as f64 / f64::from(1 << 20),
            r.tables
        );
    }
    if info.settings.is_empty() {
        let _ = writeln!(out, "  settings:    none");
    } else {
        let _ = writeln!(out, "  settings:");
        for s in &info.settings {
            let value = match grant.operator.get(&s.key) {
                // The operator's values may be secrets: where, not what.
                Some(source) => format!("set by {source}"),
                None => s
                    .default
                    .as_ref()
                    .map_or("(unset)".to_owned(), |d| format!("{d:?}")),
            };
            let _ = writeln!(
                out,
                "    {} = {value}   ({}; set with {})",
                s.key,
                s.description,
                id.env_var(&s.key)
            );
        }
    }
    let asks: Vec<String> = grant
        .requests
        .iter()
        .map(|r| format!("{} (its {} setting)", r.host, r.setting))
        .collect();
    let _ = writeln!(out, "  asks for:    {}", hosts_or_none(&asks));
    let hosts: Vec<String> = grant
        .hosts
        .iter()
        .map(|h| {
            let private = if h.private {
                ", private addresses too"
            } else {
                ""
            };
            format!("{} (by {}{private})", h.host, h.by)
        })
        .collect();
    let _ = writeln!(out, "  may reach:   {}", hosts_or_none(&hosts));
    let _ = writeln!(
        out,
        "  granted:     env [{}], folder {}",
        grant.env_names().join(", "),
        grant
            .dir
            .as_ref()
            .map_or("none".to_owned(), |d| format!("{} at /data", d.display()))
    );
    if let Some(line) = grant.grant_line() {
        let _ = writeln!(
            out,
            "  not granted: {}; to grant, put in {}:\n{}\n               or set {}",
            grant.missing_hosts().join(", "),
            line.file,
            line.toml
                .lines()
                .map(|l| format!("                 {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            line.env
        );
    }

    let msg = crate::chat::inbound(message, "whatsapp:+15550001111", 1);
    if !plugin.wants(&crate::trigger::Seen::new(&msg)) {
        let _ = writeln!(
            out,
            "\nmessage {message:?}: not called (it matches none of its triggers)"
        );
        return Ok(out);
    }
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

/// `a, b` or `no host`.
fn hosts_or_none(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "no host".to_owned()
    } else {
        hosts.join(", ")
    }
}
