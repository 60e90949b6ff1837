//! Every enum a report prints is written in JSON as the command line
//! takes it (kebab-case), and the names reports used before are still read.

use cedar_vm::disk_channel::{CachePolicy, IoEngine};
use cedar_vm::runtable::Layout;
use cedar_vm::utility_mode::scan::ScanMode;
use cedar_vm::utility_mode::scavenge::{Severity, Status};
use cedar_vm::vm_core::simulate::AccessPattern;
use cedar_vm::vm_core::{Advice, DataState, FaultService, MonitorScope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// `value` is written as `new` and read back from it, and `old` (the
/// variant's own name, as earlier reports wrote it) reads as `value` too.
fn named<T>(value: T, new: serde_json::Value, old: serde_json::Value)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    assert_eq!(serde_json::to_value(&value).unwrap(), new, "{value:?}");
    assert_eq!(serde_json::from_value::<T>(new).unwrap(), value);
    assert_eq!(serde_json::from_value::<T>(old).unwrap(), value);
}

fn unit<T>(value: T, new: &str, old: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    named(value, new.into(), old.into());
}

#[test]
fn reports_write_enums_as_the_command_line_and_read_the_old_names() {
    unit(Status::Clean, "clean", "Clean");
    unit(Status::Repairable, "repairable", "Repairable");
    unit(Status::Repaired, "repaired", "Repaired");
    unit(Status::Unrecoverable, "unrecoverable", "Unrecoverable");
    unit(Severity::Note, "note", "Note");
    unit(Severity::Repairable, "repairable", "Repairable");
    unit(Severity::Unrecoverable, "unrecoverable", "Unrecoverable");
    unit(ScanMode::Quick, "quick", "Quick");
    unit(ScanMode::Full, "full", "Full");
    unit(Layout::Concatenate, "concatenate", "Concatenate");
    named(
        Layout::Stripe { unit: 4 },
        serde_json::json!({"stripe": {"unit": 4}}),
        serde_json::json!({"Stripe": {"unit": 4}}),
    );
    unit(CachePolicy::Direct, "direct", "Direct");
    unit(CachePolicy::DropBehind, "drop-behind", "DropBehind");
    unit(CachePolicy::Buffered, "buffered", "Buffered");
    unit(IoEngine::Auto, "auto", "Auto");
    unit(IoEngine::Uring, "uring", "Uring");
    unit(IoEngine::Threads, "threads", "Threads");
    unit(FaultService::InFaultingThread, "thread", "InFaultingThread");
    unit(FaultService::Worker, "worker", "Worker");
    unit(MonitorScope::Decisions, "decisions", "Decisions");
    unit(MonitorScope::HeldAcrossIo, "held-across-io", "HeldAcrossIo");
    unit(Advice::Normal, "normal", "Normal");
    unit(Advice::Sequential, "sequential", "Sequential");
    unit(Advice::Random, "random", "Random");
    unit(Advice::WillNeed, "will-need", "WillNeed");
    unit(Advice::DontNeed, "dont-need", "DontNeed");
    unit(DataState::None, "none", "None");
    unit(DataState::Undefined, "undefined", "Undefined");
    unit(DataState::Unchanged, "unchanged", "Unchanged");
    unit(DataState::Changed, "changed", "Changed");
    unit(AccessPattern::Random, "random", "Random");
    unit(AccessPattern::Sequential, "sequential", "Sequential");
    named(
        AccessPattern::Zipf { s: 0.99 },
        serde_json::json!({"zipf": {"s": 0.99}}),
        serde_json::json!({"Zipf": {"s": 0.99}}),
    );
}

/// The names reports print in their tables are the JSON's.
#[test]
fn tables_print_the_json_names() {
    for scope in [MonitorScope::Decisions, MonitorScope::HeldAcrossIo] {
        assert_eq!(serde_json::to_value(scope).unwrap(), scope.name());
    }
    for name in cedar_vm::disk_channel::SimModel::PRESETS {
        let model = cedar_vm::disk_channel::SimModel::preset(name).expect(name);
        assert_eq!(
            model.name, name,
            "a preset's own name is the one it is asked by"
        );
        assert!(
            !name.contains('_'),
            "{name}: kebab-case, as --disk takes it"
        );
    }
    // The names earlier reports wrote still find their presets.
    for old in ["trident_t300", "modern_hdd"] {
        assert!(
            cedar_vm::disk_channel::SimModel::preset(old).is_some(),
            "{old}"
        );
    }
}
