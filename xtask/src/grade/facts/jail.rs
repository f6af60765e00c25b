//! What a case's jail turned out to be on this machine.

use serde::{Deserialize, Serialize};

/// Size of the scratch tmpfs, and the largest file a program may write.
pub const SCRATCH_LIMIT: u64 = 64 << 20;

/// `PATH` in a case's environment: where a program the case runs finds the
/// commands it executes by name (and where the judge looks them up).
pub const CASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Which isolation is in force, as found by a keeper.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct JailFeatures {
    pub supported: bool,
    pub own_uid: bool,
    pub user_ns: bool,
    pub mount_ns: bool,
    pub net_ns: bool,
    /// System V IPC of its own (shared memory, semaphores, queues).
    #[serde(default)]
    pub ipc_ns: bool,
    /// PIDs of its own: the keeper is PID 1 of the case's PID namespace,
    /// with that namespace's `/proc`.
    #[serde(default)]
    pub pid_ns: bool,
    /// Empty file systems over /tmp, /run, /home... (no unix socket of the
    /// host can be reached by its path).
    #[serde(default)]
    pub hidden_dirs: bool,
    /// A /proc of its own where a program sees only the processes it may
    /// ptrace (`hidepid=invisible`): without a PID namespace, this hides
    /// anything only as root, where the case has a uid of its own.
    #[serde(default)]
    pub hidepid: bool,
    pub scratch_tmpfs: bool,
    /// Every mount but scratch and /proc read-only (as an ordinary user,
    /// whose programs share its uid: Landlock does not cover chmod).
    #[serde(default)]
    pub read_only_host: bool,
    /// Landlock ABI version, 0 if none.
    pub landlock: i32,
    pub pids_cgroup: bool,
    pub memory_cgroup: bool,
    /// What a missing feature leaves open, one sentence each.
    pub missing: Vec<String>,
}

impl JailFeatures {
    /// The sandbox turned off on purpose.
    pub fn off() -> Self {
        Self {
            supported: true,
            missing: vec!["everything: turned off (--sandbox=off)".into()],
            ..Self::default()
        }
    }

    /// One line for the grader's output, such as
    /// `sandbox: own uid, mount+net+pid namespaces, landlock v7, pids cgroup`.
    pub fn line(&self) -> String {
        if !self.supported {
            return "sandbox: none (only Linux has one): the programs run with your rights".into();
        }
        if *self == Self::off() {
            return "sandbox: off (--sandbox=off): the programs run with your rights".into();
        }
        let mut parts = Vec::new();
        if self.own_uid {
            parts.push("own uid".to_string());
        }
        let namespaces: Vec<&str> = [
            (self.user_ns, "user"),
            (self.mount_ns, "mount"),
            (self.net_ns, "net"),
            (self.ipc_ns, "ipc"),
            (self.pid_ns, "pid"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if !namespaces.is_empty() {
            parts.push(format!("{} namespaces", namespaces.join("+")));
        }
        if self.scratch_tmpfs {
            parts.push(format!("{} MiB scratch tmpfs", SCRATCH_LIMIT >> 20));
        }
        if self.hidden_dirs {
            parts.push("/tmp, /run, /home... emptied".into());
        }
        if self.read_only_host {
            parts.push("read-only host files".into());
        }
        if self.hidepid {
            parts.push("/proc hidepid".into());
        }
        if self.landlock > 0 {
            parts.push(format!("landlock v{}", self.landlock));
        }
        match (self.pids_cgroup, self.memory_cgroup) {
            (true, true) => parts.push("pids+memory cgroup".into()),
            (true, false) => parts.push("pids cgroup".into()),
            (false, true) => parts.push("memory cgroup".into()),
            (false, false) => parts.push("rlimits".into()),
        }
        let mut line = format!("sandbox: {}", parts.join(", "));
        if !self.missing.is_empty() {
            line.push_str(&format!("; missing: {}", self.missing.join("; ")));
        }
        line
    }

    /// Lists what is missing; `pid_why_not` says why there is no PID
    /// namespace, if the keeper knows.
    pub fn note_missing(&mut self, pid_why_not: Option<&str>) {
        let mut missing = Vec::new();
        if !self.mount_ns {
            missing.push("no mount namespace, so scratch is not size-limited".to_string());
        } else if !self.hidden_dirs {
            missing.push(
                "the host's /tmp and /run stay visible: programs can connect to unix sockets there"
                    .to_string(),
            );
        }
        if !self.ipc_ns {
            missing.push("no IPC namespace: programs share System V IPC with the host".to_string());
        }
        if !self.own_uid && !self.read_only_host {
            missing.push(
                "programs have your uid and the host's files are writable to chmod and utime (landlock does not cover them)"
                    .to_string(),
            );
        }
        if !self.pid_ns {
            let why = pid_why_not
                .map(|why| format!(" ({why})"))
                .unwrap_or_default();
            missing.push(if self.hidepid {
                format!("no PID namespace{why}: programs see the machine's PIDs, though not other users' processes (hidepid)")
            } else {
                format!("no PID namespace{why}, no private /proc: programs can list the machine's processes and read their command lines")
            });
        }
        if !self.net_ns && self.landlock < 4 {
            missing.push("no network namespace: programs can reach the network".into());
        } else if !self.net_ns {
            missing.push("no network namespace: only TCP is refused (landlock)".into());
        }
        if self.landlock == 0 {
            missing
                .push("no landlock: programs can read and write whatever the user can".to_string());
        } else if self.landlock < 6 && !self.own_uid {
            missing.push(format!(
                "landlock v{} has no signal scoping: programs can signal the user's other processes",
                self.landlock
            ));
        }
        if !self.own_uid && !self.user_ns {
            missing.push(
                "neither a uid nor a user namespace of the case's own: the process limit counts all of the user's processes"
                    .to_string(),
            );
        }
        self.missing = missing;
    }
}
