//! Classic BPF for `PACKET_FANOUT_CBPF`: the instruction type and the flow-steering
//! program the pipelines install.
//!
//! # What a fanout program sees
//!
//! The kernel runs a fanout program on the socket buffer as the receive path hands it
//! to packet taps. By then the Ethernet header has been pulled, so offset 0 of a plain
//! load (`ld [0]`) is the first byte of the **network header**, and an 802.1Q tag has
//! been moved into metadata, so the EtherType is read with the ancillary load
//! `SKF_AD_PROTOCOL`, which gives the inner EtherType of a tagged frame. Plain loads
//! read through paged (non-linear) buffers, so this works for every frame on every
//! kernel with fanout BPF (4.3+). Frames leaving the interface would be seen from
//! their Ethernet header instead; the driver joins groups with
//! `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`, so they never reach the program.
//!
//! (`SKF_LL_OFF`-relative loads would look at the Ethernet header, but kernels before
//! 6.15 serve them from the linear part of the buffer only, which does not hold the IP
//! header of frames a local AF_PACKET transmit ring sent over a veth.)

/// One classic BPF instruction (`struct sock_filter`), laid out as the kernel expects.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockFilter {
    /// Opcode: class, size, mode and source bits (`BPF_LD | BPF_H | BPF_ABS`, ...).
    pub code: u16,
    /// Jump offset (from the next instruction) when a conditional jump is true.
    pub jt: u8,
    /// Jump offset (from the next instruction) when a conditional jump is false.
    pub jf: u8,
    /// The instruction's constant: an offset, an immediate, a scratch slot.
    pub k: u32,
}

impl SockFilter {
    /// An instruction without jumps (`BPF_STMT`).
    pub const fn stmt(code: u16, k: u32) -> SockFilter {
        SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump (`BPF_JUMP`).
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
        SockFilter { code, jt, jf, k }
    }
}

/// Classic BPF opcode bits (`linux/filter.h`, `linux/bpf_common.h`).
pub mod op {
    #![allow(missing_docs)]
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;

    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;

    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    pub const A: u16 = 0x10;

    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;

    /// `SKF_AD_OFF`: base of the ancillary loads (`+ 0` is `SKF_AD_PROTOCOL`).
    pub const AD_OFF: i32 = -0x1000;
    /// `SKF_NET_OFF`: loads at this base plus n read byte n of the network header.
    pub const NET_OFF: i32 = -0x10_0000;
    /// `SKF_LL_OFF`: loads at this base plus n read byte n of the link-layer header.
    pub const LL_OFF: i32 = -0x20_0000;
}

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the ancillary load of the frame's EtherType (after
/// the kernel removed a VLAN tag), in host order.
const AD_PROTOCOL: u32 = op::AD_OFF as u32;

/// The worker [`steer_by_flow_program`] picks for an IPv4 TCP/UDP packet, computed the
/// same way: `(src ^ dst ^ sport ^ dport) % n` on the addresses as big-endian words.
/// The data plane sees it as [`Steering::FanoutXor`](crate::steer::Steering) (see
/// [`flow_program_steering`]).
#[inline]
pub fn steer_flow(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, n_workers: u32) -> u32 {
    crate::steer::fanout_xor(src, dst, sport, dport, n_workers)
}

/// A classic BPF program for `PACKET_FANOUT_CBPF` that spreads flows over `n_workers`
/// sockets of a fanout group, symmetrically.
///
/// For an IPv4 TCP or UDP frame (Ethernet, optionally one 802.1Q tag) it returns
/// `(src_ip ^ dst_ip ^ src_port ^ dst_port) % n_workers`, every field read in network
/// byte order as an unsigned number. XOR does not care about order, so both directions
/// of an un-NATed flow land on the same worker. Everything else (ARP, IPv6, other IP
/// protocols, and non-first IPv4 fragments, which carry no ports) returns 0, so worker
/// 0 sees it. First fragments carry ports and are steered like the rest of their flow;
/// later fragments are not (no `PACKET_FANOUT_FLAG_DEFRAG`, to keep it simple: worker 0
/// owns reassembly). See the [module documentation](self) for the offsets it reads.
///
/// The kernel maps the returned index to the group's sockets in the order they joined
/// (and takes it modulo the group size once more), so worker `i` must be the `i`-th
/// socket to join. `n_workers` of 0 is treated as 1.
pub fn steer_by_flow_program(n_workers: u32) -> Vec<SockFilter> {
    use op::*;
    let n = n_workers.max(1);
    // Index of the final `ret #0`; jumps to it are computed from it so the layout can
    // be read top to bottom.
    const RET0: usize = 23;
    let to_ret0 = |from: usize| (RET0 - from - 1) as u8;
    let prog = vec![
        /* 0 */ SockFilter::stmt(LD | W | ABS, AD_PROTOCOL), // EtherType, untagged
        /* 1 */ SockFilter::jump(JMP | JEQ | K, 0x0800, 0, to_ret0(1)),
        /* 2 */ SockFilter::stmt(LD | B | ABS, 9), // IP protocol
        /* 3 */ SockFilter::jump(JMP | JEQ | K, 6, 1, 0), // TCP
        /* 4 */ SockFilter::jump(JMP | JEQ | K, 17, 0, to_ret0(4)), // UDP
        /* 5 */ SockFilter::stmt(LD | H | ABS, 6), // flags, fragment offset
        /* 6 */ SockFilter::jump(JMP | JSET | K, 0x1fff, to_ret0(6), 0),
        /* 7 */ SockFilter::stmt(LD | W | ABS, 12), // source address
        /* 8 */ SockFilter::stmt(ST, 0),
        /* 9 */ SockFilter::stmt(LD | W | ABS, 16), // destination address
        /* 10 */ SockFilter::stmt(LDX | W | MEM, 0),
        /* 11 */ SockFilter::stmt(ALU | XOR | X, 0),
        /* 12 */ SockFilter::stmt(ST, 0), // M[0] = src ^ dst
        /* 13 */ SockFilter::stmt(LDX | B | MSH, 0), // X = IP header length
        /* 14 */ SockFilter::stmt(LD | H | IND, 0), // source port
        /* 15 */ SockFilter::stmt(ST, 1),
        /* 16 */ SockFilter::stmt(LD | H | IND, 2), // destination port
        /* 17 */ SockFilter::stmt(LDX | W | MEM, 1),
        /* 18 */ SockFilter::stmt(ALU | XOR | X, 0),
        /* 19 */ SockFilter::stmt(LDX | W | MEM, 0),
        /* 20 */ SockFilter::stmt(ALU | XOR | X, 0),
        /* 21 */ SockFilter::stmt(ALU | MOD | K, n),
        /* 22 */ SockFilter::stmt(RET | A, 0),
        /* 23 */ SockFilter::stmt(RET | K, 0),
    ];
    debug_assert_eq!(prog.len(), RET0 + 1);
    prog
}

/// The steering `prog` implements, when it is exactly the program
/// [`steer_by_flow_program`] builds for some worker count:
/// [`Steering::FanoutXor`](crate::steer::Steering::FanoutXor) with that count. `None`
/// for any other program (whose spread the data plane cannot predict).
pub fn flow_program_steering(prog: &[SockFilter]) -> Option<crate::steer::Steering> {
    let modulo = prog.iter().find(|i| i.code == op::ALU | op::MOD | op::K)?.k;
    (steer_by_flow_program(modulo) == prog)
        .then_some(crate::steer::Steering::FanoutXor { workers: modulo })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::op::*;
    use super::*;

    /// A tiny classic BPF interpreter with the kernel's semantics for a fanout program
    /// on receive: `frame` (an Ethernet frame as on the wire) first goes through what
    /// the kernel's receive path does before the fanout hook (one 802.1Q tag moved to
    /// metadata, the Ethernet header pulled), then plain loads read from the network
    /// header, `SKF_AD_OFF + SKF_AD_PROTOCOL` reads the (inner) EtherType, loads are
    /// big-endian and a load past the end ends the program with 0. Other ancillary or
    /// negative-offset loads are refused (`Err`), as the steering program must not need
    /// them.
    pub(crate) fn run(prog: &[SockFilter], frame: &[u8]) -> Result<u32, String> {
        let ethertype = |at: usize| {
            frame
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let (proto, l3) = match ethertype(12) {
            Some(0x8100) => (ethertype(16).ok_or("short tagged frame")?, 18),
            Some(t) => (t, 14),
            None => return Err("frame shorter than an Ethernet header".into()),
        };
        let data = frame.get(l3..).unwrap_or(&[]);
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; 16];
        let mut pc = 0usize;
        let load = |off: u32, size: usize| -> Result<Option<u32>, String> {
            if off == AD_OFF as u32 {
                return Ok(Some(u32::from(proto)));
            }
            if (off as i32) < 0 {
                return Err(format!(
                    "load at {:#x}: negative offsets are not used",
                    off as i32
                ));
            }
            let at = off as usize;
            Ok(data
                .get(at..at + size)
                .map(|b| b.iter().fold(0u32, |v, &byte| (v << 8) | byte as u32)))
        };
        for _ in 0..4096 {
            let ins = *prog.get(pc).ok_or("fell off the end")?;
            pc += 1;
            let size = match ins.code & 0x18 {
                W => 4,
                H => 2,
                _ => 1,
            };
            let src = if ins.code & X != 0 { x } else { ins.k };
            match ins.code & 0x07 {
                LD => {
                    let v = match ins.code & 0xe0 {
                        IMM => Some(ins.k),
                        ABS => load(ins.k, size)?,
                        IND => load(ins.k.wrapping_add(x), size)?,
                        MEM => Some(mem[ins.k as usize]),
                        LEN => Some(data.len() as u32),
                        m => return Err(format!("ld mode {m:#x}")),
                    };
                    match v {
                        Some(v) => a = v,
                        None => return Ok(0),
                    }
                }
                LDX => {
                    x = match ins.code & 0xe0 {
                        IMM => ins.k,
                        MEM => mem[ins.k as usize],
                        LEN => data.len() as u32,
                        MSH => match load(ins.k, 1)? {
                            Some(v) => (v & 0xf) * 4,
                            None => return Ok(0),
                        },
                        m => return Err(format!("ldx mode {m:#x}")),
                    }
                }
                ST => mem[ins.k as usize] = a,
                STX => mem[ins.k as usize] = x,
                ALU => {
                    a = match ins.code & 0xf0 {
                        ADD => a.wrapping_add(src),
                        SUB => a.wrapping_sub(src),
                        MUL => a.wrapping_mul(src),
                        DIV if src == 0 => return Ok(0),
                        DIV => a / src,
                        MOD if src == 0 => return Ok(0),
                        MOD => a % src,
                        OR => a | src,
                        AND => a & src,
                        XOR => a ^ src,
                        LSH => a.checked_shl(src).unwrap_or(0),
                        RSH => a.checked_shr(src).unwrap_or(0),
                        NEG => a.wrapping_neg(),
                        o => return Err(format!("alu op {o:#x}")),
                    }
                }
                JMP => {
                    let taken = match ins.code & 0xf0 {
                        JA => {
                            pc += ins.k as usize;
                            continue;
                        }
                        JEQ => a == src,
                        JGT => a > src,
                        JGE => a >= src,
                        JSET => a & src != 0,
                        o => return Err(format!("jmp op {o:#x}")),
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                RET => {
                    return Ok(match ins.code & 0x18 {
                        A => a,
                        _ => ins.k,
                    })
                }
                _ => match ins.code & 0xf8 {
                    TAX => x = a,
                    TXA => a = x,
                    o => return Err(format!("misc op {o:#x}")),
                },
            }
        }
        Err("did not return within 4096 steps".into())
    }

    /// An Ethernet frame holding an IPv4 packet of protocol `proto` with the given
    /// addresses and ports, optionally 802.1Q-tagged and with IP options.
    pub(crate) fn ipv4_frame(
        vlan: Option<u16>,
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        ihl_words: u8,
    ) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if let Some(tci) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_len = ihl_words as usize * 4;
        let total = (ip_len + 8 + 4) as u16;
        let mut ip = vec![0u8; ip_len];
        ip[0] = 0x40 | ihl_words;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 12, 0, 0, b'r', b'o', b'u', b'g']);
        f
    }

    fn expected(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, n: u32) -> u32 {
        super::steer_flow(src, dst, sport, dport, n)
    }

    #[test]
    fn the_flow_program_is_recognised_and_others_are_not() {
        for n in 1..=8 {
            assert_eq!(
                flow_program_steering(&steer_by_flow_program(n)),
                Some(crate::steer::Steering::FanoutXor { workers: n })
            );
        }
        let mut other = steer_by_flow_program(4);
        other[2].k = 8;
        assert_eq!(flow_program_steering(&other), None);
        assert_eq!(flow_program_steering(&[SockFilter::stmt(RET | K, 0)]), None);
    }

    #[test]
    fn steers_tcp_and_udp_symmetrically() {
        for n in [1u32, 2, 3, 4, 7] {
            let prog = steer_by_flow_program(n);
            for (i, proto) in [6u8, 17].into_iter().enumerate() {
                let src = [198, 18, 1, 2 + i as u8];
                let dst = [198, 18, 2, 11];
                let (sp, dp) = (40_000 + i as u16 * 77, 443);
                let want = expected(src, dst, sp, dp, n);
                let fwd = ipv4_frame(None, proto, src, dst, sp, dp, 5);
                let back = ipv4_frame(None, proto, dst, src, dp, sp, 5);
                assert_eq!(run(&prog, &fwd), Ok(want), "n={n} proto={proto}");
                assert_eq!(run(&prog, &back), Ok(want), "n={n} proto={proto} reverse");
            }
        }
    }

    #[test]
    fn different_flows_use_every_worker() {
        let prog = steer_by_flow_program(4);
        let mut seen = [0u32; 4];
        for port in 1000..1064u16 {
            let f = ipv4_frame(None, 17, [198, 18, 1, 2], [198, 18, 2, 11], port, 80, 5);
            let w = run(&prog, &f).unwrap();
            assert_eq!(w, expected([198, 18, 1, 2], [198, 18, 2, 11], port, 80, 4));
            seen[w as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c == 16), "{seen:?}");
    }

    #[test]
    fn reads_past_a_vlan_tag_and_ip_options() {
        let prog = steer_by_flow_program(5);
        let (src, dst) = ([198, 18, 1, 7], [198, 18, 2, 12]);
        let want = expected(src, dst, 5555, 8080, 5);
        assert_ne!(
            want, 0,
            "pick a flow that does not hash to 0 to tell it from 'other'"
        );
        let tagged = ipv4_frame(Some(0x2064), 6, src, dst, 5555, 8080, 5);
        assert_eq!(run(&prog, &tagged), Ok(want));
        let options = ipv4_frame(Some(10), 6, src, dst, 5555, 8080, 7);
        assert_eq!(run(&prog, &options), Ok(want));
        let untagged_options = ipv4_frame(None, 17, dst, src, 8080, 5555, 6);
        assert_eq!(run(&prog, &untagged_options), Ok(want));
    }

    #[test]
    fn everything_else_goes_to_worker_0() {
        let prog = steer_by_flow_program(3);
        // Choose a flow that would hash to a non-zero worker if it were steered.
        let (src, dst) = ([198, 18, 1, 2], [198, 18, 2, 11]);
        assert_ne!(expected(src, dst, 1, 2, 3), 0);
        let arp: Vec<u8> = [
            &[0xff; 6][..],
            &[0x02, 0, 0, 0, 0, 1],
            &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1],
            &[0x02, 0, 0, 0, 0, 1, 198, 18, 1, 2],
            &[0; 6],
            &[198, 18, 1, 1],
        ]
        .concat();
        assert_eq!(run(&prog, &arp), Ok(0));
        let icmp = ipv4_frame(None, 1, src, dst, 1, 2, 5);
        assert_eq!(run(&prog, &icmp), Ok(0));
        let mut later_fragment = ipv4_frame(None, 17, src, dst, 1, 2, 5);
        later_fragment[14 + 6..14 + 8].copy_from_slice(&0x00b9u16.to_be_bytes());
        assert_eq!(run(&prog, &later_fragment), Ok(0));
        let mut first_fragment = ipv4_frame(None, 17, src, dst, 1, 2, 5);
        first_fragment[14 + 6] = 0x20; // more fragments, offset 0
        assert_eq!(run(&prog, &first_fragment), Ok(expected(src, dst, 1, 2, 3)));
        let mut ipv6 = ipv4_frame(None, 17, src, dst, 1, 2, 5);
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(run(&prog, &ipv6), Ok(0));
        let tagged_arp: Vec<u8> = [&arp[..12], &[0x81, 0x00, 0, 5], &arp[12..]].concat();
        assert_eq!(run(&prog, &tagged_arp), Ok(0));
        // A truncated frame fails a load, which the kernel turns into 0.
        let short = ipv4_frame(None, 17, src, dst, 1, 2, 5);
        assert_eq!(run(&prog, &short[..30]), Ok(0));
    }

    /// The software copy of the program (`steer::fanout_xor_frame`, for drivers that
    /// hand frames over between workers) picks the same worker as the program for every
    /// frame: steered flows, tags, options, fragments, other protocols, truncations and
    /// random damage.
    #[test]
    fn the_software_fanout_agrees_with_the_program() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in [1u32, 2, 3, 4, 8] {
            let prog = steer_by_flow_program(n);
            for _ in 0..3000 {
                let r = next();
                let vlan = (r & 3 == 0).then_some((r >> 8) as u16 & 0x0fff);
                let proto = [6, 17, 1, 47][(r >> 2) as usize & 3];
                let ihl = 5 + (r >> 24) as u8 % 3;
                let src = ((next() as u32) | 0xc612_0000).to_be_bytes();
                let dst = (next() as u32).to_be_bytes();
                let mut f = ipv4_frame(vlan, proto, src, dst, next() as u16, next() as u16, ihl);
                let l3 = if vlan.is_some() { 18 } else { 14 };
                match (r >> 32) % 8 {
                    // A fragment, first or later, with or without more to come.
                    0 => {
                        f[l3 + 6..l3 + 8].copy_from_slice(&((next() as u16) & 0x3fff).to_be_bytes())
                    }
                    // Truncated anywhere.
                    1 => f.truncate((next() as usize) % f.len()),
                    // Random bytes somewhere in the headers.
                    2 => {
                        let at = (next() as usize) % (l3 + 24).min(f.len());
                        f[at] = next() as u8;
                    }
                    // Another EtherType (ARP, IPv6) in place of IPv4.
                    3 => f[l3 - 2..l3].copy_from_slice(&[0x86, 0xdd]),
                    _ => {}
                }
                if f.len() < l3 {
                    // No Ethernet header: the kernel delivers no such frame, and the
                    // software copy answers 0.
                    assert_eq!(crate::steer::fanout_xor_frame(&f, n), 0);
                    continue;
                }
                assert_eq!(
                    Ok(crate::steer::fanout_xor_frame(&f, n)),
                    run(&prog, &f),
                    "n={n} frame={f:02x?}"
                );
            }
        }
    }

    #[test]
    fn the_interpreter_models_the_kernel_view() {
        let f = ipv4_frame(Some(3), 17, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 5);
        let first = [
            SockFilter::stmt(LD | B | ABS, 0),
            SockFilter::stmt(RET | A, 0),
        ];
        assert_eq!(
            run(&first, &f),
            Ok(0x45),
            "offset 0 is the IP header, tag removed"
        );
        let proto = [
            SockFilter::stmt(LD | W | ABS, AD_PROTOCOL),
            SockFilter::stmt(RET | A, 0),
        ];
        assert_eq!(run(&proto, &f), Ok(0x0800));
        let ll = [
            SockFilter::stmt(LD | B | ABS, LL_OFF as u32),
            SockFilter::stmt(RET | A, 0),
        ];
        assert!(run(&ll, &f).is_err());
    }
}
