//! The seccomp filter every traced program gets, built from the table of
//! system calls (`calls::CALLS`), and an interpreter of it: at each seccomp
//! stop the tracer runs the filter itself on the kernel's record of the
//! call (`PTRACE_GET_SYSCALL_INFO`), so that a verdict never rests on data
//! a program could have chosen (its own filter's `SECCOMP_RET_TRACE`).
//!
//! Built here, not with `seccompiler`, for three reasons that its design
//! fixes: it kills a process that calls through another architecture
//! (`SECCOMP_RET_KILL_PROCESS`), where the grader must let the tracer
//! refuse the call and name it in the verdict; it has no x32 check; and
//! one filter has one match action, where this one needs three (watch,
//! refuse with a reason, answer ENOSYS), which would take stacked filters
//! whose combined verdict the interpreter below would have to model. The
//! program is a linear list of comparisons, as the table reads.

use nix::libc;

use super::calls::{Action, Rule, Test, CALLS};

/// The filter's verdict data for a watched call (refusals use 2 and up:
/// `calls::Refusal`).
pub const WATCHED: u32 = 1;

/// The filter every traced program gets, built once.
pub fn our_filter() -> &'static [libc::sock_filter] {
    static FILTER: std::sync::OnceLock<Vec<libc::sock_filter>> = std::sync::OnceLock::new();
    FILTER.get_or_init(seccomp_filter)
}

/// What the filter returns for an action.
fn verdict_of(action: Action) -> u32 {
    match action {
        Action::Allow => libc::SECCOMP_RET_ALLOW,
        Action::Watch => libc::SECCOMP_RET_TRACE | WATCHED,
        Action::Refuse(why) => libc::SECCOMP_RET_TRACE | why.data(),
        Action::Enosys => libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    }
}

/// A classic BPF program: the architecture first (a call through the i386
/// or x32 ABI is refused, and named), then one comparison per call of the
/// table, with its argument test where it has one; anything else runs.
/// Other architectures: allow all.
pub fn seccomp_filter() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    if !cfg!(target_arch = "x86_64") {
        return vec![libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        }];
    }
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_BIT: u32 = 0x4000_0000;
    use super::calls::Refusal;
    // Where a jump goes: the next instruction, past more of them, or one
    // of the returns at the end.
    #[derive(Clone, Copy, PartialEq)]
    enum To {
        Next,
        Skip(u8),
        Ret(u32),
    }
    // seccomp_data: nr at offset 0, arch at 4, args from 16 (8 bytes each;
    // the low word first, on x86_64).
    let arg_offset = |arg: usize| 16 + 8 * arg as u32;
    let mut code: Vec<(u16, u32, To, To)> = vec![
        (LD_W_ABS, 4, To::Next, To::Next),
        (
            JEQ_K,
            AUDIT_ARCH_X86_64,
            To::Next,
            To::Ret(verdict_of(Action::Refuse(Refusal::I386))),
        ),
        (LD_W_ABS, 0, To::Next, To::Next),
        (
            JGE_K,
            X32_BIT,
            To::Ret(verdict_of(Action::Refuse(Refusal::X32))),
            To::Next,
        ),
    ];
    for call in CALLS {
        let nr = call.nr as u32;
        match call.rule {
            Rule::Always(action) => {
                code.push((JEQ_K, nr, To::Ret(verdict_of(action)), To::Next));
            }
            Rule::When {
                arg,
                test,
                then,
                otherwise,
            } => {
                let (then, otherwise) = (To::Ret(verdict_of(then)), To::Ret(verdict_of(otherwise)));
                // After the load the accumulator holds the argument, not the
                // number: every way out of the test returns.
                let tests: Vec<(u16, u32, To, To)> = match test {
                    Test::AnySet(bits) => vec![(JSET_K, bits, then, otherwise)],
                    Test::OneOf(values) => values
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let last = i + 1 == values.len();
                            (JEQ_K, v, then, if last { otherwise } else { To::Next })
                        })
                        .collect(),
                };
                code.push((JEQ_K, nr, To::Next, To::Skip(1 + tests.len() as u8)));
                code.push((LD_W_ABS, arg_offset(arg), To::Next, To::Next));
                code.extend(tests);
            }
        }
    }
    // Anything else runs: the first return.
    let mut returns = vec![libc::SECCOMP_RET_ALLOW];
    for &(_, _, jt, jf) in &code {
        for to in [jt, jf] {
            if let To::Ret(value) = to {
                if !returns.contains(&value) {
                    returns.push(value);
                }
            }
        }
    }
    let body = code.len();
    let offset = |i: usize, to: To| -> u8 {
        match to {
            To::Next => 0,
            To::Skip(n) => n,
            To::Ret(value) => {
                let at = body + returns.iter().position(|r| *r == value).unwrap_or(0);
                u8::try_from(at - i - 1).expect("the filter fits in 8-bit jumps")
            }
        }
    };
    let mut program: Vec<libc::sock_filter> = code
        .iter()
        .enumerate()
        .map(|(i, &(op, k, jt, jf))| libc::sock_filter {
            code: op,
            jt: offset(i, jt),
            jf: offset(i, jf),
            k,
        })
        .collect();
    program.extend(returns.iter().map(|&k| libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k,
    }));
    program
}

/// What the classic BPF `program` returns for one `seccomp_data`.
pub fn filter_verdict(program: &[libc::sock_filter], nr: u64, arch: u32, args: &[u64]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, arg) in args.iter().take(6).enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
    }
    let (mut pc, mut a) = (0usize, 0u32);
    // Ours only loads absolute words, jumps forward and returns.
    while let Some(i) = program.get(pc) {
        match (i.code & 0x07) as u32 {
            libc::BPF_LD => {
                let at = i.k as usize;
                a = data
                    .get(at..at + 4)
                    .map_or(0, |w| u32::from_ne_bytes(w.try_into().unwrap_or([0; 4])));
                pc += 1;
            }
            libc::BPF_JMP => {
                let taken = match (i.code & 0xf0) as u32 {
                    libc::BPF_JEQ => a == i.k,
                    libc::BPF_JGE => a >= i.k,
                    libc::BPF_JSET => a & i.k != 0,
                    _ => return libc::SECCOMP_RET_ALLOW,
                };
                pc += 1 + if taken { i.jt } else { i.jf } as usize;
            }
            libc::BPF_RET => return i.k,
            _ => return libc::SECCOMP_RET_ALLOW,
        }
    }
    libc::SECCOMP_RET_ALLOW
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::grade::observe::calls::Refusal;

    const X86_64: u32 = 0xC000_003E;

    /// The filter does what the table says, for every call, on both sides
    /// of its argument test; and a call the table lacks runs.
    #[test]
    fn the_filter_is_the_table() {
        let program = seccomp_filter();
        for call in CALLS {
            let mut samples: Vec<[u64; 6]> = vec![[0; 6]];
            if let Rule::When { arg, test, .. } = call.rule {
                let values: Vec<u32> = match test {
                    Test::AnySet(bits) => vec![bits, bits | 0x11],
                    Test::OneOf(values) => values.to_vec(),
                };
                for v in values {
                    let mut args = [0; 6];
                    args[arg] = v as u64;
                    samples.push(args);
                }
            }
            for args in samples {
                assert_eq!(
                    filter_verdict(&program, call.nr as u64, X86_64, &args),
                    verdict_of(call.rule.action(&args)),
                    "{} with {args:?}",
                    call.name
                );
            }
        }
        for nr in [libc::SYS_getpid, libc::SYS_munmap, libc::SYS_close] {
            assert!(CALLS.iter().all(|c| c.nr != nr));
            assert_eq!(
                filter_verdict(&program, nr as u64, X86_64, &[0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
        }
        // Every refusal's data names a refusal.
        for why in Refusal::ALL {
            assert_eq!(Refusal::of_data(why.data()), Some(why));
        }
    }
}
