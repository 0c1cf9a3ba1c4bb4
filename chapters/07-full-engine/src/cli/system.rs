//! `info` and `version`: what this engine is and what it holds, in docker's
//! layout (and, with `--format`, docker's field names).

use std::collections::BTreeMap;

use clap::Args;
use serde_json::json;

use super::format::{render, template};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::Status;
use crate::engine::runtime_client::{DEFAULT_RUNTIME, find_runtime};

/// `--format` for `info` and `version`.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn print_formatted(format: &str, data: &serde_json::Value) -> Outcome {
    let value = gotmpl::ser::to_value(data).map_err(|e| Failure::new(e.to_string(), 1))?;
    if format == "json" {
        println!("{data}");
        return Ok(0);
    }
    let template = template(format).map_err(|m| Failure::new(m, 1))?;
    println!(
        "{}",
        render(&template, &value).map_err(|m| Failure::new(m, 1))?
    );
    Ok(0)
}

/// The first line a runtime prints for `--version`.
fn runtime_version(name: &str) -> Option<(String, String)> {
    let path = find_runtime(name).ok()?;
    let output = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.lines().next()?.split_whitespace().last()?.to_string();
    Some((path.display().to_string(), version))
}

/// `version`.
pub fn version(_engine: &Engine, args: &FormatArgs) -> Outcome {
    let ours = env!("CARGO_PKG_VERSION");
    let os_arch = format!("linux/{}", go_arch());
    let runtimes: Vec<(String, Option<(String, String)>)> = ["berth-runtime", "runc", "crun"]
        .iter()
        .map(|name| (name.to_string(), runtime_version(name)))
        .collect();
    let data = json!({
        "Client": {"Version": ours, "Os": "linux", "Arch": go_arch(), "Platform": {"Name": "Berth"}},
        "Server": {
            "Platform": {"Name": "Berth (daemonless)"},
            "Version": ours, "Os": "linux", "Arch": go_arch(),
            "KernelVersion": kernel_release(),
            "Components": runtimes.iter().filter_map(|(name, v)| v.as_ref().map(|(_, version)|
                json!({"Name": name, "Version": version}))).collect::<Vec<_>>(),
        },
    });
    if let Some(format) = &args.format {
        return print_formatted(format, &data);
    }
    println!("Client:");
    println!(" Version:           {ours}");
    println!(" OS/Arch:           {os_arch}");
    println!();
    println!("Server: Berth (daemonless)");
    println!(" Engine:");
    println!("  Version:          {ours}");
    println!("  OS/Arch:          {os_arch}");
    println!("  Kernel Version:   {}", kernel_release());
    for (name, found) in &runtimes {
        if let Some((_, version)) = found {
            println!(" {name}:");
            println!("  Version:          {version}");
        }
    }
    Ok(0)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    crate::engine::stats::mem_total(std::path::Path::new("/proc"))
}

/// go-units' BytesSize: binary units, as `info` prints memory.
pub fn bytes_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < units.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    super::ps::four_digits(size) + units[unit]
}

/// `info`.
pub fn info(engine: &Engine, args: &FormatArgs) -> Outcome {
    let containers = engine.containers()?;
    let count =
        |f: &dyn Fn(Status) -> bool| containers.iter().filter(|c| f(c.state.status)).count();
    let running = count(&|s| matches!(s, Status::Running | Status::Restarting));
    let paused = count(&|s| s == Status::Paused);
    let stopped = containers.len() - running - paused;
    let images = engine
        .image_store()
        .and_then(|s| {
            s.names()
                .map_err(|e| crate::engine::EngineError::msg(e.to_string()))
        })
        .map(|names| {
            names
                .values()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0);
    let cgroup_version = ch03_cgroups::detect(engine.proc_root())
        .map(|l| l.version().to_string())
        .unwrap_or_else(|_| "none".into());
    let runtimes: BTreeMap<String, serde_json::Value> = ["berth-runtime", "runc", "crun"]
        .iter()
        .filter_map(|name| {
            let (path, _) = runtime_version(name)?;
            Some((name.to_string(), json!({"path": path})))
        })
        .collect();
    let name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The registry settings as docker shows them: mirrors end with '/'.
    let settings = engine.settings();
    let default_runtime = settings
        .default_runtime
        .as_deref()
        .unwrap_or(DEFAULT_RUNTIME);
    let insecure = settings.insecure_list();
    let mirrors: Vec<String> = settings
        .registry_mirrors
        .iter()
        .map(|m| format!("{}/", m.trim_end_matches('/')))
        .collect();
    let data = json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": kernel_release(),
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "Name": name,
        "DockerRootDir": engine.roots().root.display().to_string(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DefaultRuntime": default_runtime,
        "RegistryConfig": {
            "InsecureRegistryCIDRs": insecure.iter().filter(|e| e.contains('/')).collect::<Vec<_>>(),
            "Mirrors": mirrors,
        },
        "Runtimes": runtimes,
    });
    if let Some(format) = &args.format {
        return print_formatted(format, &data);
    }
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!();
    println!("Server:");
    println!(" Containers: {}", containers.len());
    println!("  Running: {running}");
    println!("  Paused: {paused}");
    println!("  Stopped: {stopped}");
    println!(" Images: {images}");
    println!(
        " Server Version: {} (daemonless)",
        env!("CARGO_PKG_VERSION")
    );
    println!(" Storage Driver: overlay");
    println!(" Logging Driver: json-file");
    println!(" Cgroup Driver: cgroupfs");
    println!(" Cgroup Version: {cgroup_version}");
    println!(
        " Runtimes: {}",
        runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    println!(" Default Runtime: {default_runtime}");
    println!(" Kernel Version: {}", kernel_release());
    println!(" Operating System: {}", os_name());
    println!(" OSType: linux");
    println!(" Architecture: {}", std::env::consts::ARCH);
    println!(" CPUs: {}", data["NCPU"]);
    println!(" Total Memory: {}", bytes_size(mem_total()));
    println!(" Name: {name}");
    println!(" Docker Root Dir: {}", engine.roots().root.display());
    println!(" Berth Run Dir: {}", engine.roots().run.display());
    println!(" Insecure Registries:");
    for entry in &insecure {
        println!("  {entry}");
    }
    if !mirrors.is_empty() {
        println!(" Registry Mirrors:");
        for mirror in &mirrors {
            println!("  {mirror}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_as_dockers() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(25_200_000_000), "23.47GiB");
        assert_eq!(bytes_size(1024), "1KiB");
    }
}
