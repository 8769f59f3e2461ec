//! Compiled MIBs. A tenant's uploaded modules are compiled together with
//! mib-rs (its built-in base modules included) by the worker's `mib.compile`
//! jobs (`compile`, feature `compile`); what each module came to and the
//! resolved OID tree are kept in `mib_modules` and `mib_nodes` (`records`),
//! which the api browses.

#[cfg(feature = "compile")]
pub mod archive;
#[cfg(feature = "compile")]
pub mod compile;
#[cfg(feature = "compile")]
pub mod names;
pub mod records;
mod types;

pub use types::{
    Compiled, CompiledModule, Diagnostic, IndexPart, Known, MibModule, MibNode, ModuleSource,
    NamedNumber, NodeSummary,
};
