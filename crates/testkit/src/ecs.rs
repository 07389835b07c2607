//! ECS: tasks that use a workspace or run an image, the task definitions behind them, services.
//! Every task and service runs in the fixture's cluster, on moto's default VPC.

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, Compatibility, ContainerDefinition, ContainerOverride,
    EfsAuthorizationConfig, EfsTransitEncryption, EfsVolumeConfiguration, KeyValuePair, LaunchType,
    NetworkConfiguration, NetworkMode, Tag, TaskOverride, Volume,
};

use crate::moto::{http, moto_endpoint, query, unique};
use crate::Fixture;

/// Makes moto's ECS tasks stay in their state instead of advancing on every DescribeTasks (moto
/// would otherwise stop a test's task while the function under test is still looking at it).
fn freeze_ecs_task_states() {
    let (status, body) = http(
        "POST",
        &format!("{}/moto-api/state-manager/set-transition", moto_endpoint()),
        r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#,
    );
    assert!((200..300).contains(&status), "{status} {body}");
}

/// The first `<element>` of an EC2 query answer about moto's default VPC.
fn first_of_default_vpc(action: &str, element: &str) -> String {
    let body = query("ec2", &format!("Action={action}&Version=2016-11-15"));
    let open = format!("<{element}>");
    let start = body.find(&open).unwrap_or_else(|| panic!("no {element}")) + open.len();
    body[start..].split('<').next().unwrap().to_string()
}

/// The awsvpc network every test task and service runs in: a subnet and a security group of
/// moto's default VPC (moto refuses made-up ids).
fn fargate_network() -> NetworkConfiguration {
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets(first_of_default_vpc("DescribeSubnets", "subnetId"))
                .security_groups(first_of_default_vpc("DescribeSecurityGroups", "groupId"))
                .build()
                .expect("subnets are set"),
        )
        .build()
}

/// The image of the agent containers that use workspaces (never pulled: moto runs nothing).
fn agent_image() -> String {
    format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@sha256:{}",
        "a".repeat(64)
    )
}

/// Where a task that uses a workspace names it.
#[derive(Clone, Copy)]
enum Names<'a> {
    /// A `workspaceId` tag on the task.
    Tag(&'a str),
    /// `WORKSPACE_ID` in the agent container's environment.
    Env(&'a str),
    Nothing,
}

impl Fixture {
    /// Registers a revision of `family`: one Fargate container `container` running `image`,
    /// with the workspace volume of `access_point` when given. Returns its ARN.
    async fn register(
        &self,
        family: &str,
        container: &str,
        image: &str,
        access_point: Option<&str>,
    ) -> String {
        let mut call = self
            .ecs
            .register_task_definition()
            .family(family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name(container)
                    .image(image)
                    .memory(512)
                    .build(),
            );
        if let Some(access_point) = access_point {
            let efs = EfsVolumeConfiguration::builder()
                .file_system_id(&self.file_system_id)
                .transit_encryption(EfsTransitEncryption::Enabled)
                .authorization_config(
                    EfsAuthorizationConfig::builder()
                        .access_point_id(access_point)
                        .build(),
                )
                .build()
                .expect("file system id is set");
            call = call.volumes(
                Volume::builder()
                    .name("workspace")
                    .efs_volume_configuration(efs)
                    .build(),
            );
        }
        call.send()
            .await
            .expect("register task definition")
            .task_definition
            .and_then(|td| td.task_definition_arn)
            .expect("a task definition ARN")
    }

    /// Starts a Fargate task of `task_definition` that names `names`; returns its ARN.
    async fn start(&self, task_definition: &str, names: Names<'_>) -> String {
        freeze_ecs_task_states();
        let mut run = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(task_definition)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network());
        match names {
            Names::Tag(ws) => run = run.tags(Tag::builder().key("workspaceId").value(ws).build()),
            Names::Env(ws) => {
                let variable = KeyValuePair::builder()
                    .name("WORKSPACE_ID")
                    .value(ws)
                    .build();
                run = run.overrides(
                    TaskOverride::builder()
                        .container_overrides(
                            ContainerOverride::builder()
                                .name("agent")
                                .environment(variable)
                                .build(),
                        )
                        .build(),
                );
            }
            Names::Nothing => {}
        }
        let out = run.send().await.expect("run task");
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    /// Starts a task that uses workspace `ws` (named by tag when `by_tag`, else by environment).
    pub async fn run_task_for(&self, ws: &str, by_tag: bool) -> String {
        let agent = self
            .register(&unique("agent"), "agent", &agent_image(), None)
            .await;
        let names = if by_tag {
            Names::Tag(ws)
        } else {
            Names::Env(ws)
        };
        self.start(&agent, names).await
    }

    /// Starts one task per workspace, each tagged with its workspace.
    pub async fn run_tasks_for(&self, workspaces: &[String]) -> Vec<String> {
        let agent = self
            .register(&unique("agent"), "agent", &agent_image(), None)
            .await;
        let mut arns = Vec::new();
        for ws in workspaces {
            arns.push(self.start(&agent, Names::Tag(ws)).await);
        }
        arns
    }

    /// Starts a task that names no workspace but mounts `access_point` through an EFS volume of
    /// its task definition.
    pub async fn run_task_mounting(&self, access_point: &str) -> String {
        let mounter = self
            .register(
                &unique("mounter"),
                "agent",
                &agent_image(),
                Some(access_point),
            )
            .await;
        self.start(&mounter, Names::Nothing).await
    }

    /// Registers a task definition (a new family) whose container runs `image`; returns its ARN.
    pub async fn task_definition(&self, image: &str) -> String {
        self.task_definition_in(&unique("td"), image).await
    }

    /// Registers a revision of `family` whose container runs `image`; returns its ARN.
    pub async fn task_definition_in(&self, family: &str, image: &str) -> String {
        self.register(family, "app", image, None).await
    }

    /// Runs a task of `task_definition` in this fixture's cluster; returns its ARN.
    pub async fn run_task_definition(&self, task_definition: &str) -> String {
        self.start(task_definition, Names::Nothing).await
    }

    /// A service of `task_definition` (no task running) in this fixture's cluster.
    pub async fn service(&self, task_definition: &str) {
        self.ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(unique("svc"))
            .task_definition(task_definition)
            .desired_count(0)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network())
            .send()
            .await
            .expect("create service");
    }
}
