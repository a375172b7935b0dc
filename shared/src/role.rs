//! The four hooks Greenlight ships, and the ECS lifecycle stages and CodeDeploy lifecycle
//! events each one is meant for.

use std::fmt;

use crate::stage::Stage;

/// Which of the four Greenlight functions is running. Each binary says its role once, in
/// `main.rs`; everything else is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    BeforeInstall,
    AfterInstall,
    BeforeAllowTraffic,
    AfterAllowTraffic,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::BeforeInstall,
        Role::AfterInstall,
        Role::BeforeAllowTraffic,
        Role::AfterAllowTraffic,
    ];

    /// The function's name, as its folder and binary are named.
    pub fn name(self) -> &'static str {
        match self {
            Role::BeforeInstall => "before-install",
            Role::AfterInstall => "after-install",
            Role::BeforeAllowTraffic => "before-allow-traffic",
            Role::AfterAllowTraffic => "after-allow-traffic",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The ECS lifecycle stages this function is designed for. It accepts the others too
    /// (a hook can be attached to any stage); these are the ones the book recommends (docs/concepts.md).
    pub fn ecs_stages(self) -> &'static [Stage] {
        match self {
            Role::BeforeInstall => &[Stage::ReconcileService, Stage::PreScaleUp],
            Role::AfterInstall => &[Stage::PostScaleUp],
            Role::BeforeAllowTraffic => &[
                Stage::TestTrafficShift,
                Stage::PostTestTrafficShift,
                Stage::PreProductionTrafficShift,
            ],
            Role::AfterAllowTraffic => &[
                Stage::ProductionTrafficShift,
                Stage::PostProductionTrafficShift,
            ],
        }
    }

    /// The stage assumed when the event does not name one (the flat launch-era event
    /// shape, or a stage this version does not know).
    pub fn assumed_stage(self) -> Stage {
        match self {
            Role::BeforeInstall => Stage::PreScaleUp,
            Role::AfterInstall => Stage::PostScaleUp,
            Role::BeforeAllowTraffic => Stage::TestTrafficShift,
            Role::AfterAllowTraffic => Stage::PostProductionTrafficShift,
        }
    }

    /// The CodeDeploy lifecycle events this function serves (ECS and Lambda compute
    /// platforms). CodeDeploy's event does not say which one is running.
    pub fn codedeploy_hooks(self) -> &'static [&'static str] {
        match self {
            Role::BeforeInstall => &["BeforeInstall"],
            Role::AfterInstall => &["AfterInstall"],
            Role::BeforeAllowTraffic => &["AfterAllowTestTraffic", "BeforeAllowTraffic"],
            Role::AfterAllowTraffic => &["AfterAllowTraffic"],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
