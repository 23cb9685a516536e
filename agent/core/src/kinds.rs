//! What gitsync knows about built-in kinds without asking a cluster: which are
//! cluster-scoped, which are workloads, and in which order a sync applies them.
//!
//! Custom resources are unknown here: they are treated as namespaced (as kustomize does)
//! and applied last. The cluster's discovery has the final word at apply time.

/// Kinds that are cluster-scoped in Kubernetes.
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// Kinds whose pod template a strategy can roll out.
const WORKLOADS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// True for kinds Kubernetes serves cluster-scoped.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// True for kinds that carry a pod template (or are a Pod).
pub fn is_workload(kind: &str) -> bool {
    WORKLOADS.contains(&kind)
}

/// Apply order of a kind: lower first. Prune runs in reverse.
///
/// Namespaces, CRDs, ServiceAccounts/RBAC, ConfigMaps/Secrets, PVCs, Services,
/// workloads, HPAs, Ingresses, then everything else.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "StorageClass" | "PriorityClass" | "IngressClass" => 2,
        "ServiceAccount" => 3,
        "ClusterRole" | "Role" => 4,
        "ClusterRoleBinding" | "RoleBinding" => 5,
        "ConfigMap" | "Secret" => 6,
        "PersistentVolume" => 7,
        "PersistentVolumeClaim" => 8,
        "Service" => 9,
        k if is_workload(k) => 10,
        "HorizontalPodAutoscaler" | "PodDisruptionBudget" => 11,
        "Ingress" | "NetworkPolicy" => 12,
        _ => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_design_order() {
        let order = [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "Widget",
        ];
        for pair in order.windows(2) {
            assert!(apply_rank(pair[0]) < apply_rank(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn scope() {
        assert!(is_cluster_scoped("Namespace"));
        assert!(!is_cluster_scoped("Deployment"));
        assert!(!is_cluster_scoped("Widget"));
    }
}
