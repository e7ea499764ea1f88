//! A guest that faults, triple-faults or hangs ends the run with an error naming the vCPU, the
//! vector or exit, and RIP; never a hang of the VMM.

use std::time::Duration;

use haltpoll_abi::layout;
use haltpoll_vmm::testing::kvm_or_skip;
use haltpoll_vmm::{Failure, GuestError, IdlePolicy, RunOptions, Workload, run};

fn failures(options: RunOptions) -> (Vec<GuestError>, String) {
    let err = run(&options).expect_err("the test workload must fail");
    let text = err.to_string();
    (err.guest_failures().unwrap_or_else(|| panic!("not a guest failure: {text}")).to_vec(), text)
}

#[test]
fn a_page_fault_is_reported_with_vector_rip_and_address() {
    let Some(_vm) = kvm_or_skip("a_page_fault_is_reported_with_vector_rip_and_address") else { return };
    for idle in [IdlePolicy::Busy, IdlePolicy::Halt] {
        let (failures, text) = failures(RunOptions { workload: Workload::Fault, idle, ..Default::default() });
        let first = &failures[0];
        assert_eq!(first.vcpu, 1, "{text}");
        assert_eq!(first.failure, Failure::Exception { vector: 14, error_code: 4, cr2: 0x4000_0000_0000 }, "{text}");
        assert_eq!(first.ring, 3, "{text}");
        assert!((layout::IMAGE..layout::IMAGE_END).contains(&first.rip), "{text}");
        assert!(text.starts_with("vCPU 1 raised #PF (page fault, vector 14)"), "{text}");
        assert!(text.contains(&format!("RIP {:#x}", first.rip)), "{text}");
        // The other vCPU, waiting for a message that never comes, was stopped.
        assert_eq!(failures[1].vcpu, 0);
        assert_eq!(failures[1].failure, Failure::Stopped, "{text}");
    }
}

#[test]
fn a_triple_fault_is_reported() {
    let Some(_vm) = kvm_or_skip("a_triple_fault_is_reported") else { return };
    let (failures, text) = failures(RunOptions { workload: Workload::TripleFault, ..Default::default() });
    assert_eq!((failures[0].vcpu, &failures[0].failure), (0, &Failure::TripleFault), "{text}");
    assert!(text.contains("vCPU 0 triple-faulted (KVM_EXIT_SHUTDOWN)"), "{text}");
}

#[test]
fn hung_vcpus_are_kicked_out_of_kvm_and_named() {
    let Some(_vm) = kvm_or_skip("hung_vcpus_are_kicked_out_of_kvm_and_named") else { return };
    // (A second: time enough for both vCPUs to reach their hang on a loaded host.)
    let stall = Duration::from_secs(1);
    let (failures, text) =
        failures(RunOptions { workload: Workload::Hang, stall_limit: Some(stall), ..Default::default() });
    // vCPU 0 spins at ring 3; vCPU 1 sits in HLT with interrupts off, which only a kick ends.
    assert_eq!(failures.len(), 2, "{text}");
    let hung = |f: &GuestError| match f.failure {
        Failure::Hung { limit, progress, halted, interrupts_enabled } => (limit, progress, halted, interrupts_enabled),
        ref other => panic!("vCPU {} {other}", f.vcpu),
    };
    assert_eq!(failures[0].vcpu, 0);
    assert_eq!(hung(&failures[0]), (stall, 0, false, true), "{text}");
    assert_eq!(failures[0].ring, 3);
    assert_eq!(failures[1].vcpu, 1);
    assert_eq!(hung(&failures[1]), (stall, 0, true, false), "{text}");
    assert!(text.contains("vCPU 1 hung: no progress for 1s after 0 messages, halted with interrupts off"), "{text}");
}

#[test]
fn a_run_past_its_time_limit_is_stopped() {
    let Some(_vm) = kvm_or_skip("a_run_past_its_time_limit_is_stopped") else { return };
    // A healthy ping-pong that cannot finish 10^9 round trips in 2 s (time enough for it to
    // make progress, also on a loaded host).
    let options = RunOptions {
        idle: IdlePolicy::Busy,
        round_trips: 1_000_000_000,
        time_limit: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (failures, text) = failures(options);
    assert_eq!(failures.len(), 2, "{text}");
    for f in &failures {
        assert!(
            matches!(f.failure, Failure::Overran { limit, progress } if limit == Duration::from_secs(2) && progress > 0),
            "{text}"
        );
    }
}
