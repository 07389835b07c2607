//! ECS: the tasks that use workspaces ([`EcsTasks`]), and the images tasks, services and task
//! definitions run ([`EcsDeployments`]).

mod deployments;
mod tasks;

pub use deployments::{service_revision_uses, EcsDeployments};
pub use tasks::{task_summary, EcsTasks};
