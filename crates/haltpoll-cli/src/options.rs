//! Option groups that several subcommands take, declared once and flattened into each
//! (`#[command(flatten)]`), so that the same flag means the same thing everywhere.

use anyhow::{Context, Result};
use clap::Args;
use haltpoll::{GovernorKind, GovernorParams, Params, PredictiveParams, ValidParams, ValidPredictiveParams};

/// The parameters of both governors the guest's haltpoll driver can run (`bench vm`,
/// `vm pingpong`): Linux's options and the predictive governor's.
#[derive(Args, Debug)]
pub struct GuestGovernors {
    #[command(flatten)]
    pub linux: Params,
    #[command(flatten)]
    pub predictive: PredictiveParams,
}

impl GuestGovernors {
    /// Linux's governor's parameters, validated.
    pub fn valid_linux(&self) -> Result<ValidParams> {
        self.linux.validate().context("invalid governor parameters")
    }

    /// The predictive governor's parameters, validated.
    pub fn valid_predictive(&self) -> Result<ValidPredictiveParams> {
        self.predictive.validate().context("invalid predictive governor parameters")
    }

    /// The parameters of the governor `kind` names, validated.
    pub fn select(&self, kind: GovernorKind) -> Result<GovernorParams> {
        Ok(match kind {
            GovernorKind::Linux => self.valid_linux()?.into(),
            GovernorKind::Predictive => self.valid_predictive()?.into(),
        })
    }
}
