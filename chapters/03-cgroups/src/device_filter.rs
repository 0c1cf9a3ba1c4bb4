//! The devices controller on cgroup v2: a BPF program the kernel runs at
//! every open(2) and mknod(2) of a device node.
//!
//! Kernel feature: cgroup v2 has no `devices.allow` file. Since Linux 4.15
//! a cgroup instead takes a small eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`: the kernel calls it with the device's
//! type, major, minor and the access asked for (a `struct
//! bpf_cgroup_dev_ctx`), and it returns 1 to allow or 0 to refuse (EPERM).
//! runc, crun and youki all generate one from the same rules v1 gets, and
//! so do we: [`device_filter`] turns a [`DeviceCgroupState`] into the
//! instructions, [`attach_device_filter`] loads them with bpf(2)
//! (`BPF_PROG_LOAD`) and attaches the program to the container's cgroup
//! directory (`BPF_PROG_ATTACH`, `BPF_CGROUP_DEVICE`).
//!
//! The program is a chain of blocks, one per exception, each a few
//! comparisons that jump to the next block on a mismatch and return the
//! exception's verdict on a match; the last block returns the default.
//! That is about a dozen kinds of 8-byte instruction, so this module
//! writes them itself ([`Insn`]) rather than pull in a crate: youki uses
//! rbpf (a whole eBPF virtual machine, for its instruction builder) and
//! libbpf-sys (the C libbpf, built from source with libelf and zlib);
//! aya loads only compiled ELF objects. Each of those is far more than
//! ten constructors and three system calls.
//!
//! Lifetime: attaching makes the cgroup hold the program. Our file
//! descriptors (the program's and the directory's) are closed as soon as
//! it is attached, and when the cgroup is removed the kernel detaches and
//! frees the program: nothing outlives the container.
//!
//! Man pages: bpf(2); the kernel's Documentation/bpf/standardization/
//! instruction-set.rst, Documentation/admin-guide/cgroup-v2.rst ("Device
//! controller"), and include/uapi/linux/bpf.h (`bpf_cgroup_dev_ctx`,
//! `BPF_DEVCG_*`).

use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use crate::devices::{Access, DeviceCgroupState, DeviceKey, DeviceType};
use crate::error::CgroupError;

/// One eBPF instruction, as the kernel reads it (`struct bpf_insn`): an
/// opcode, the destination register in the low 4 bits of `regs` and the
/// source register in the high 4, a jump offset and an immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == 8);

// The opcodes we use: class | operation | source (include/uapi/linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W: load a u32
const ALU_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K: 32-bit and
const ALU_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K: 32-bit shift right
const ALU_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K: 32-bit move
const ALU_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// `bpf_cgroup_dev_ctx.access_type`, low 16 bits (`BPF_DEVCG_DEV_*`).
fn device_type_value(typ: DeviceType) -> i32 {
    match typ {
        DeviceType::Block => 1,
        // A key never holds All (the state folds `a` rules into its default).
        DeviceType::Char | DeviceType::All => 2,
    }
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0xf),
            off,
            imm,
        }
    }
    /// `dst = *(u32 *)(src + off)`
    pub fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(LDX_MEM_W, dst, src, off, 0)
    }
    /// `wDST &= imm`
    pub fn and32(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU_AND_K, dst, 0, 0, imm)
    }
    /// `wDST >>= imm`
    pub fn rsh32(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU_RSH_K, dst, 0, 0, imm)
    }
    /// `wDST = imm`
    pub fn mov32(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU_MOV_K, dst, 0, 0, imm)
    }
    /// `wDST = wSRC`
    pub fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(ALU_MOV_X, dst, src, 0, 0)
    }
    /// `if rDST == imm goto pc+off`
    pub fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP_JEQ_K, dst, 0, off, imm)
    }
    /// `if rDST != imm goto pc+off`
    pub fn jne(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP_JNE_K, dst, 0, off, imm)
    }
    /// `if rDST != rSRC goto pc+off`
    pub fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(JMP_JNE_X, dst, src, off, 0)
    }
    /// Return r0.
    pub fn exit() -> Insn {
        Insn::new(JMP_EXIT, 0, 0, 0, 0)
    }

    fn dst(&self) -> u8 {
        self.regs & 0xf
    }
    fn src(&self) -> u8 {
        self.regs >> 4
    }
}

/// The instruction in the kernel verifier's (and bpftool's) notation.
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s, off, imm) = (self.dst(), self.src(), self.off, self.imm);
        match self.code {
            LDX_MEM_W => write!(f, "r{d} = *(u32 *)(r{s} {off:+})"),
            ALU_AND_K => write!(f, "w{d} &= {imm}"),
            ALU_RSH_K => write!(f, "w{d} >>= {imm}"),
            ALU_MOV_K => write!(f, "w{d} = {imm}"),
            ALU_MOV_X => write!(f, "w{d} = w{s}"),
            JMP_JEQ_K => write!(f, "if r{d} == {imm:#x} goto pc{off:+}"),
            JMP_JNE_K => write!(f, "if r{d} != {imm:#x} goto pc{off:+}"),
            JMP_JNE_X => write!(f, "if r{d} != r{s} goto pc{off:+}"),
            JMP_EXIT => write!(f, "exit"),
            code => write!(f, "(unknown opcode {code:#04x})"),
        }
    }
}

/// A device filter: the instructions, and where each block starts with
/// what it checks (for people reading the program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub insns: Vec<Insn>,
    pub blocks: Vec<(usize, String)>,
}

/// One line per instruction, `   6: (55) if r2 != 0x1 goto pc+5`, with a
/// comment above each block.
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, insn) in self.insns.iter().enumerate() {
            for (_, comment) in self.blocks.iter().filter(|(start, _)| *start == i) {
                writeln!(f, "; {comment}")?;
            }
            writeln!(f, "{i:4}: ({:02x}) {insn}", insn.code)?;
        }
        Ok(())
    }
}

// The registers the program keeps the question in.
const CTX: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const SCRATCH: u8 = 1;

/// The program that decides as `state` would on cgroup v1.
// ANCHOR: device_filter
pub fn device_filter(state: &DeviceCgroupState) -> Program {
    // The question, from struct bpf_cgroup_dev_ctx { u32 access_type;
    // u32 major; u32 minor; }: access_type is (access << 16) | type.
    let mut insns = vec![
        Insn::load_u32(TYPE, CTX, 0),
        Insn::and32(TYPE, 0xffff),
        Insn::load_u32(ACCESS, CTX, 0),
        Insn::rsh32(ACCESS, 16),
        Insn::load_u32(MAJOR, CTX, 4),
        Insn::load_u32(MINOR, CTX, 8),
    ];
    let mut blocks = vec![(0, "load type, access, major, minor".to_string())];
    // One block per exception: any mismatch jumps past the block's end.
    let verdict = i32::from(!state.default_allow);
    for (key, access) in &state.exceptions {
        let block = exception_block(key, *access, state.default_allow, verdict);
        let verb = if verdict == 1 { "allow" } else { "deny" };
        blocks.push((insns.len(), format!("{verb} {key} {access}")));
        insns.extend(block);
    }
    // Nothing matched: the default.
    let default = i32::from(state.default_allow);
    let verb = if default == 1 { "allow" } else { "deny" };
    blocks.push((insns.len(), format!("anything else: {verb}")));
    insns.extend([Insn::mov32(0, default), Insn::exit()]);
    Program { insns, blocks }
}

/// `if (type, access, major, minor) match { return verdict }`.
fn exception_block(key: &DeviceKey, held: Access, default_allow: bool, verdict: i32) -> Vec<Insn> {
    // Each jump's offset is filled in once the block's length is known:
    // `NEXT` marks "to the instruction after the block".
    const NEXT: i16 = i16::MIN;
    let mut block = vec![Insn::jne(TYPE, device_type_value(key.typ), NEXT)];
    if held != Access::ALL {
        block.push(Insn::mov32_reg(SCRATCH, ACCESS));
        block.push(Insn::and32(SCRATCH, i32::from(held.bits())));
        if default_allow {
            // A deny exception hits when any asked access is denied.
            block.push(Insn::jeq(SCRATCH, 0, NEXT));
        } else {
            // An allow exception hits when it covers all that is asked.
            block.push(Insn::jne_reg(SCRATCH, ACCESS, NEXT));
        }
    }
    if let Some(major) = key.major {
        block.push(Insn::jne(MAJOR, major as i32, NEXT));
    }
    if let Some(minor) = key.minor {
        block.push(Insn::jne(MINOR, minor as i32, NEXT));
    }
    block.extend([Insn::mov32(0, verdict), Insn::exit()]);
    let len = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.off == NEXT {
            insn.off = (len - i - 1) as i16;
        }
    }
    block
}
// ANCHOR_END: device_filter

// From include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Let cgroups below attach programs of their own; every program on the
/// way up must then allow an access (what runc, crun and systemd use).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to the fields we set.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The `BPF_PROG_ATTACH` part.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// The `BPF_PROG_QUERY` part.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The `BPF_PROG_GET_FD_BY_ID` part.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2): `cmd` with `attr`. The result is a file descriptor or 0.
///
/// # Safety
/// `attr` must be the part of `union bpf_attr` that `cmd` reads, and the
/// pointers in it must point to memory valid for the call (readable; the
/// log buffer and ID array writable, of the sizes given).
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: the caller vouches for `attr`; the kernel reads (and for some
    // commands writes) `size` bytes of it, and nothing else of ours.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) };
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// Take ownership of a descriptor bpf(2) just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a new descriptor that nothing else owns (the
    // kernel opens it close-on-exec).
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Load `program` into the kernel as a device filter.
fn load(program: &Program, path: &Path) -> Result<OwnedFd, CgroupError> {
    const LICENSE: &CStr = c"MIT";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"berth_devices");
    let attr = |log: &mut [u8]| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.insns.len() as u32,
        insns: program.insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        // No log: all three 0 (a buffer without a level is EINVAL).
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    // SAFETY: a BPF_PROG_LOAD attr; insns, license and name outlive the
    // call, and there is no log buffer.
    let errno = match unsafe { bpf(BPF_PROG_LOAD, &mut attr(&mut [])) } {
        Ok(fd) => return Ok(owned(fd)),
        Err(errno) => errno,
    };
    // Refused: ask again with the verifier's log, to say why.
    let mut log = vec![0u8; 64 * 1024];
    // SAFETY: as above, with a writable log buffer of log.len() bytes.
    if let Ok(fd) = unsafe { bpf(BPF_PROG_LOAD, &mut attr(&mut log)) } {
        drop(owned(fd)); // accepted this time after all: keep no copy
    }
    let log = String::from_utf8_lossy(&log);
    let last = log.trim_matches(char::from(0)).trim().lines().last();
    let hint = match (errno, last) {
        (Errno::EPERM, _) => {
            "loading a BPF program needs root (CAP_BPF and CAP_SYS_ADMIN); before Linux 5.11 it also counts against RLIMIT_MEMLOCK".to_string()
        }
        (_, Some(line)) => format!("the kernel's verifier says: {line}"),
        (_, None) => "does this kernel have CONFIG_CGROUP_BPF (Linux 4.15 or later)?".to_string(),
    };
    Err(CgroupError::DeviceFilter {
        call: "bpf(BPF_PROG_LOAD)",
        path: path.to_path_buf(),
        errno,
        hint,
    })
}

/// Open cgroup directory `dir` for bpf(2).
fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| CgroupError::Syscall {
        call: "open",
        path: dir.to_path_buf(),
        errno,
    })
}

/// Load `program` and attach it to the cgroup at `dir`. Both descriptors
/// are closed on return: from then on the cgroup holds the program.
// ANCHOR: attach
pub fn attach_device_filter(dir: &Path, program: &Program) -> Result<(), CgroupError> {
    let cgroup = open_dir(dir)?;
    let prog = load(program, dir)?;
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: a BPF_PROG_ATTACH attr of two descriptors we hold open.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map_err(|errno| CgroupError::DeviceFilter {
        call: "bpf(BPF_PROG_ATTACH)",
        path: dir.to_path_buf(),
        errno,
        hint: "is it a cgroup v2 directory?".to_string(),
    })?;
    Ok(())
}
// ANCHOR_END: attach

/// The IDs of the device filters attached to the cgroup at `dir` (as
/// `bpftool cgroup list DIR` shows them).
pub fn attached_device_filters(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let cgroup = open_dir(dir)?;
    let mut ids = vec![0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..ProgQueryAttr::default()
    };
    // SAFETY: a BPF_PROG_QUERY attr; the kernel writes at most prog_cnt
    // IDs into `ids`, which holds that many.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }.map_err(|errno| CgroupError::DeviceFilter {
        call: "bpf(BPF_PROG_QUERY)",
        path: dir.to_path_buf(),
        errno,
        hint: "is it a cgroup v2 directory?".to_string(),
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Whether the kernel still has BPF program `id` (loaded, attached or
/// held open by anyone).
pub fn program_exists(id: u32) -> Result<bool, Errno> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..GetFdByIdAttr::default()
    };
    // SAFETY: a BPF_PROG_GET_FD_BY_ID attr, no pointers.
    match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => {
            drop(owned(fd));
            Ok(true)
        }
        Err(Errno::ENOENT) => Ok(false),
        Err(errno) => Err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{LinuxDeviceCgroup, default_rules};

    fn program_for(rules: &[LinuxDeviceCgroup]) -> Program {
        device_filter(&DeviceCgroupState::from_rules(rules).unwrap())
    }

    #[test]
    fn a_rule_list_becomes_these_instructions() {
        use DeviceType::{All, Block, Char};
        let program = program_for(&[
            LinuxDeviceCgroup::deny(All, None, None, "rwm"),
            LinuxDeviceCgroup::allow(Block, None, None, "m"),
            LinuxDeviceCgroup::allow(Char, Some(1), Some(3), "rwm"),
            LinuxDeviceCgroup::allow(Char, Some(136), None, "rw"),
        ]);
        assert_eq!(
            program.to_string(),
            "\
; load type, access, major, minor
   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
; allow b *:* m
   6: (55) if r2 != 0x1 goto pc+5
   7: (bc) w1 = w3
   8: (54) w1 &= 1
   9: (5d) if r1 != r3 goto pc+2
  10: (b4) w0 = 1
  11: (95) exit
; allow c 1:3 rwm
  12: (55) if r2 != 0x2 goto pc+4
  13: (55) if r4 != 0x1 goto pc+3
  14: (55) if r5 != 0x3 goto pc+2
  15: (b4) w0 = 1
  16: (95) exit
; allow c 136:* rw
  17: (55) if r2 != 0x2 goto pc+6
  18: (bc) w1 = w3
  19: (54) w1 &= 6
  20: (5d) if r1 != r3 goto pc+3
  21: (55) if r4 != 0x88 goto pc+2
  22: (b4) w0 = 1
  23: (95) exit
; anything else: deny
  24: (b4) w0 = 0
  25: (95) exit
"
        );
        // The bytes the kernel reads: opcode, dst | src << 4, off, imm.
        assert_eq!(
            program.insns[9],
            Insn {
                code: 0x5d,
                regs: 0x31,
                off: 2,
                imm: 0
            }
        );
        assert_eq!(
            program.insns[21],
            Insn {
                code: 0x55,
                regs: 0x04,
                off: 2,
                imm: 136
            }
        );
    }

    #[test]
    fn a_deny_list_checks_for_any_denied_access() {
        use DeviceType::{All, Block};
        let program = program_for(&[
            LinuxDeviceCgroup::allow(All, None, None, "rwm"),
            LinuxDeviceCgroup::deny(Block, Some(8), None, "r"),
        ]);
        let text = program.to_string();
        assert!(
            text.contains(
                "; deny b 8:* r
   6: (55) if r2 != 0x1 goto pc+6
   7: (bc) w1 = w3
   8: (54) w1 &= 2
   9: (15) if r1 == 0x0 goto pc+3
  10: (55) if r4 != 0x8 goto pc+2
  11: (b4) w0 = 0
  12: (95) exit
; anything else: allow
  13: (b4) w0 = 1
"
            ),
            "{text}"
        );
    }

    /// Run the program the way the kernel would, for every device the
    /// defaults name and some they do not, and compare with v1's answer.
    #[test]
    fn the_program_decides_as_v1_does() {
        let state = DeviceCgroupState::from_rules(&default_rules(&[])).unwrap();
        let program = device_filter(&state);
        let devices = [
            (DeviceType::Block, 254, 0),
            (DeviceType::Block, 8, 1),
            (DeviceType::Char, 1, 1),
            (DeviceType::Char, 1, 3),
            (DeviceType::Char, 5, 2),
            (DeviceType::Char, 10, 229),
            (DeviceType::Char, 136, 0),
            (DeviceType::Char, 136, 99),
            (DeviceType::Char, 4, 1),
        ];
        for (typ, major, minor) in devices {
            for bits in 1..=7u8 {
                let access = Access::from_letters(
                    &[(2, 'r'), (4, 'w'), (1, 'm')]
                        .iter()
                        .filter(|(b, _)| bits & b != 0)
                        .map(|(_, c)| *c)
                        .collect::<String>(),
                );
                let ctx = [
                    (u32::from(access.bits()) << 16) | device_type_value(typ) as u32,
                    major,
                    minor,
                ];
                assert_eq!(
                    interpret(&program.insns, ctx) == 1,
                    state.allows(typ, major, minor, access),
                    "{typ:?} {major}:{minor} {access}"
                );
            }
        }
    }

    /// A tiny interpreter for the instructions this module emits.
    fn interpret(insns: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let insn = insns[pc];
            let (d, s) = (insn.dst() as usize, insn.src() as usize);
            let imm = insn.imm as i64 as u64;
            let jump = |cond: bool| if cond { insn.off as isize } else { 0 };
            let mut offset = 0;
            match insn.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[insn.off as usize / 4]);
                }
                ALU_AND_K => r[d] = (r[d] as u32 & insn.imm as u32) as u64,
                ALU_RSH_K => r[d] = ((r[d] as u32) >> insn.imm) as u64,
                ALU_MOV_K => r[d] = insn.imm as u32 as u64,
                ALU_MOV_X => r[d] = r[s] as u32 as u64,
                JMP_JEQ_K => offset = jump(r[d] == imm),
                JMP_JNE_K => offset = jump(r[d] != imm),
                JMP_JNE_X => offset = jump(r[d] != r[s]),
                JMP_EXIT => return r[0],
                code => panic!("unknown opcode {code:#x}"),
            }
            pc = (pc as isize + 1 + offset) as usize;
        }
    }
}
