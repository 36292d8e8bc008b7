"""The API types this server serves, as compact definitions the OpenAPI documents are built from.

kubectl reads these schemas for `kubectl explain` (field descriptions and types) and for
`kubectl apply` (patch merge keys and strategies when it computes a strategic merge patch).
Writing Kubernetes' 10,000-line JSON by hand would be unreadable, so each type is one call
to `model()` listing its fields in a tiny type notation:

    "string" "int32" "int64" "bool" "double" "byte"   primitives
    "Quantity" "Time" "MicroTime" "IntOrString"        apimachinery value types
    "Foo" / "meta.Foo" / "core.Foo"                    a reference to another model
    "[]T" / "{}T"                                      list of T / map of string to T

Names follow Kubernetes' definition names (`io.k8s.api.core.v1.PersistentVolumeClaim`) so
tools that look definitions up by name find them. Descriptions are short and our own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CORE = "io.k8s.api.core.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
STORAGE = "io.k8s.api.storage.v1"
COORDINATION = "io.k8s.api.coordination.v1"
RBAC = "io.k8s.api.rbac.v1"
AUTHORIZATION = "io.k8s.api.authorization.v1"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_SHORT_PACKAGES = {"meta": META, "core": CORE}
_VALUE_TYPES = {"Quantity": QUANTITY, "IntOrString": INT_OR_STRING,
                "Time": f"{META}.Time", "MicroTime": f"{META}.MicroTime"}


@dataclass(frozen=True)
class Field:
    """One property of a model, in the type notation of this module."""

    name: str
    type: str
    description: str
    required: bool = False
    merge_key: str = ""          # x-kubernetes-patch-merge-key
    strategy: str = ""           # x-kubernetes-patch-strategy
    list_type: str = ""          # x-kubernetes-list-type: atomic, set, map
    map_keys: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Model:
    """One schema definition; `gvk` is set on the kinds clients can send and receive."""

    name: str
    description: str
    fields: tuple[Field, ...] = ()
    gvk: tuple[str, str, str] | None = None
    raw: tuple[tuple[str, Any], ...] = ()   # a model that is not an object (Time, Quantity)
    package: str = field(default="", compare=False)


MODELS: dict[str, Model] = {}


def f(name: str, type_: str, description: str, *, required: bool = False, merge: str = "",
      strategy: str = "", list_type: str = "", keys: tuple[str, ...] = (),
      **extra: Any) -> Field:
    """A field; `merge` names the patch merge key and implies strategy "merge"."""
    if merge and not strategy:
        strategy = "merge"
    if merge and not list_type:
        list_type, keys = "map", keys or (merge,)
    return Field(name, type_, description, required, merge, strategy, list_type, keys,
                 tuple(sorted(extra.items())))


def model(package: str, name: str, description: str, *fields: Field,
          kind: tuple[str, str] | None = None) -> None:
    """Register `package.name`; `kind=(group, version)` marks a top-level kind."""
    gvk = (kind[0], kind[1], name) if kind else None
    full = f"{package}.{name}"
    MODELS[full] = Model(full, description, fields, gvk, package=package)


def value_type(full: str, description: str, **schema: Any) -> None:
    MODELS[full] = Model(full, description, raw=tuple(sorted(schema.items())))


def resolve(type_: str, package: str) -> str:
    """The full definition name a reference in the type notation points at."""
    if type_ in _VALUE_TYPES:
        return _VALUE_TYPES[type_]
    prefix, _, rest = type_.rpartition(".")
    if prefix in _SHORT_PACKAGES:
        return f"{_SHORT_PACKAGES[prefix]}.{rest}"
    return type_ if prefix else f"{package}.{type_}"


def typemeta(kind: str) -> tuple[Field, Field]:
    return (f("apiVersion", "string", "The versioned schema of this object, e.g. v1."),
            f("kind", "string", f"The type of this object: {kind}."))


def objectmeta() -> Field:
    return f("metadata", "meta.ObjectMeta", "Standard object metadata: name, labels, ...")


def kind_model(package: str, name: str, group: str, version: str, description: str,
               *fields: Field) -> None:
    """A top-level kind: apiVersion, kind and metadata come first, as in Kubernetes."""
    model(package, name, description, *typemeta(name), objectmeta(), *fields,
          kind=(group, version))



# --- apimachinery ----------------------------------------------------------------------

value_type(QUANTITY, "A fixed-point number with a suffix, such as 1Gi, 500m or 2e3.",
           type="string")
value_type(INT_OR_STRING, "A value that is either an integer or a string.",
           type="string", format="int-or-string")
value_type(f"{META}.Time", "A timestamp in RFC 3339 form, to the second.",
           type="string", format="date-time")
value_type(f"{META}.MicroTime", "A timestamp in RFC 3339 form, to the microsecond.",
           type="string", format="date-time")
value_type(f"{META}.FieldsV1", "The set of fields a manager owns, in fieldsV1 form.",
           type="object")

model(META, "ObjectMeta", "Metadata every persisted object has.",
      f("name", "string", "Unique name within a namespace (or the cluster for cluster "
                          "objects). Cannot be updated."),
      f("generateName", "string", "Prefix the server uses to generate a unique name when "
                                  "name is empty."),
      f("namespace", "string", "The namespace the object lives in; empty for cluster objects."),
      f("uid", "string", "Unique id the server assigns for the object's lifetime. Read-only."),
      f("resourceVersion", "string", "Opaque version of the object for optimistic "
                                     "concurrency and watches. Read-only."),
      f("generation", "int64", "Sequence number of the desired state (spec). Read-only."),
      f("creationTimestamp", "Time", "When the object was created. Read-only."),
      f("deletionTimestamp", "Time", "When the object will be deleted, once finalizers are "
                                     "done. Read-only."),
      f("deletionGracePeriodSeconds", "int64", "Seconds the object is given to terminate."),
      f("labels", "{}string", "Key/value pairs to organise and select objects."),
      f("annotations", "{}string", "Key/value pairs for tools; not used to select objects."),
      f("ownerReferences", "[]meta.OwnerReference", "Objects this one depends on; it is "
        "garbage collected when they are gone.", merge="uid"),
      f("finalizers", "[]string", "Conditions that must be cleared before the object is "
        "deleted.", strategy="merge", list_type="set"),
      f("managedFields", "[]meta.ManagedFieldsEntry", "Which manager owns which fields "
        "(server-side apply).", list_type="atomic"))
model(META, "OwnerReference", "Points at an object that owns this one.",
      f("apiVersion", "string", "API version of the owner.", required=True),
      f("kind", "string", "Kind of the owner.", required=True),
      f("name", "string", "Name of the owner.", required=True),
      f("uid", "string", "UID of the owner.", required=True),
      f("controller", "bool", "True if the owner is the managing controller."),
      f("blockOwnerDeletion", "bool", "Foreground deletion of the owner waits for this object."))
model(META, "ManagedFieldsEntry", "The fields one manager set through one operation.",
      f("manager", "string", "Name of the manager."),
      f("operation", "string", "Apply or Update."),
      f("apiVersion", "string", "Version of the fields below."),
      f("time", "Time", "When the fields were last changed."),
      f("fieldsType", "string", "Format of fieldsV1: FieldsV1."),
      f("fieldsV1", "meta.FieldsV1", "The owned fields."),
      f("subresource", "string", "Subresource the fields were set through, if any."))
model(META, "ListMeta", "Metadata of a list.",
      f("resourceVersion", "string", "Version of the list, to watch from."),
      f("continue", "string", "Token to fetch the next page, if the list was limited."),
      f("remainingItemCount", "int64", "How many items follow this page, when known."),
      f("selfLink", "string", "Deprecated; always empty."))
model(META, "LabelSelector", "Selects objects by labels; all requirements must hold.",
      f("matchLabels", "{}string", "Labels that must match exactly."),
      f("matchExpressions", "[]meta.LabelSelectorRequirement", "Set-based requirements.",
        list_type="atomic"))
model(META, "LabelSelectorRequirement", "One set-based label requirement.",
      f("key", "string", "The label key.", required=True),
      f("operator", "string", "In, NotIn, Exists or DoesNotExist.", required=True),
      f("values", "[]string", "Values for In and NotIn.", list_type="atomic"))
MODELS[f"{META}.Status"] = Model(
    f"{META}.Status", "The result of an operation that returns no object, often an error.",
    (*typemeta("Status"),
     f("metadata", "meta.ListMeta", "Standard list metadata."),
     f("status", "string", "Success or Failure."),
     f("message", "string", "What happened, for humans."),
     f("reason", "string", "Why it failed, in CamelCase (NotFound, AlreadyExists, ...)."),
     f("details", "meta.StatusDetails", "More about the failure, depending on the reason."),
     f("code", "int32", "The HTTP status code.")),
    ("", "v1", "Status"), package=META)
model(META, "StatusDetails", "Details of a failed operation.",
      f("name", "string", "Name of the object involved."),
      f("group", "string", "API group of the object."),
      f("kind", "string", "Kind of the object."),
      f("uid", "string", "UID of the object."),
      f("causes", "[]meta.StatusCause", "Each reason the request failed.", list_type="atomic"),
      f("retryAfterSeconds", "int32", "Seconds to wait before retrying."))
model(META, "StatusCause", "One cause of a failure.",
      f("reason", "string", "Machine-readable cause, such as FieldValueInvalid."),
      f("message", "string", "What went wrong, for humans."),
      f("field", "string", "Path of the offending field, such as spec.accessModes[0]."))
model(META, "DeleteOptions", "Options of a delete request.",
      *typemeta("DeleteOptions"),
      f("gracePeriodSeconds", "int64", "Seconds to wait before deleting; 0 means now."),
      f("preconditions", "meta.Preconditions", "Must hold for the delete to happen."),
      f("propagationPolicy", "string", "Orphan, Background or Foreground."),
      f("dryRun", "[]string", "All: validate without persisting.", list_type="atomic"))
model(META, "Preconditions", "Conditions a delete requires.",
      f("uid", "string", "The object must have this UID."),
      f("resourceVersion", "string", "The object must be at this version."))

# --- core/v1: shared pieces ------------------------------------------------------------

model(CORE, "ObjectReference", "Points at another object.",
      f("apiVersion", "string", "API version of the object."),
      f("kind", "string", "Kind of the object."),
      f("namespace", "string", "Namespace of the object."),
      f("name", "string", "Name of the object."),
      f("uid", "string", "UID of the object."),
      f("resourceVersion", "string", "Version of the object this reference was made at."),
      f("fieldPath", "string", "A part of the object, such as spec.containers{app}."))
model(CORE, "LocalObjectReference", "Names an object in the same namespace.",
      f("name", "string", "Name of the object."))
model(CORE, "TypedLocalObjectReference", "Points at an object of a kind in this namespace.",
      f("apiGroup", "string", "API group of the object; empty for the core group."),
      f("kind", "string", "Kind of the object.", required=True),
      f("name", "string", "Name of the object.", required=True))
model(CORE, "TypedObjectReference", "Points at an object of a kind, maybe in another namespace.",
      f("apiGroup", "string", "API group of the object; empty for the core group."),
      f("kind", "string", "Kind of the object.", required=True),
      f("name", "string", "Name of the object.", required=True),
      f("namespace", "string", "Namespace of the object, if not the claim's."))
model(CORE, "SecretReference", "Names a Secret in any namespace.",
      f("name", "string", "Name of the Secret."),
      f("namespace", "string", "Namespace of the Secret."))
model(CORE, "NodeSelector", "Node selector terms; a node matches if any term matches.",
      f("nodeSelectorTerms", "[]NodeSelectorTerm", "The terms, ORed.", required=True,
        list_type="atomic"))
model(CORE, "NodeSelectorTerm", "Requirements on node labels and fields, ANDed.",
      f("matchExpressions", "[]NodeSelectorRequirement", "Requirements on labels.", list_type="atomic"),
      f("matchFields", "[]NodeSelectorRequirement", "Requirements on fields.", list_type="atomic"))
model(CORE, "NodeSelectorRequirement", "One requirement on a node label or field.",
      f("key", "string", "The label key or field name.", required=True),
      f("operator", "string", "In, NotIn, Exists, DoesNotExist, Gt or Lt.", required=True),
      f("values", "[]string", "The values to compare with.", list_type="atomic"))
model(CORE, "TopologySelectorTerm", "Topology requirements, ANDed.",
      f("matchLabelExpressions", "[]TopologySelectorLabelRequirement", "Label requirements.",
        list_type="atomic"))
model(CORE, "TopologySelectorLabelRequirement", "One topology label and its allowed values.",
      f("key", "string", "The label key.", required=True),
      f("values", "[]string", "Allowed values.", required=True, list_type="atomic"))
model(CORE, "KeyToPath", "Projects one key of a ConfigMap or Secret to a file.",
      f("key", "string", "The key to project.", required=True),
      f("path", "string", "Relative file path to write it to.", required=True),
      f("mode", "int32", "File mode bits, octal 0000-0777."))
model(CORE, "ResourceRequirements", "Compute resources a container asks for and may use.",
      f("limits", "{}Quantity", "The most it may use."),
      f("requests", "{}Quantity", "The least it needs; defaults to limits."))

# --- core/v1: volumes ------------------------------------------------------------------

model(CORE, "EmptyDirVolumeSource", "A directory that starts empty and lives with the pod.",
      f("medium", "string", "Storage medium: \"\" for the node's disk, Memory for tmpfs."),
      f("sizeLimit", "Quantity", "Most space the directory may use."))
model(CORE, "HostPathVolumeSource", "A file or directory of the node mounted into the pod.",
      f("path", "string", "Path on the node.", required=True),
      f("type", "string", "What must be there: \"\", DirectoryOrCreate, Directory, "
                          "FileOrCreate, File, Socket, CharDevice, BlockDevice."))
model(CORE, "ConfigMapVolumeSource", "Files made from the keys of a ConfigMap.",
      f("name", "string", "Name of the ConfigMap."),
      f("items", "[]KeyToPath", "Keys to project; all keys when empty.", list_type="atomic"),
      f("defaultMode", "int32", "Mode bits of the files, octal 0000-0777; default 0644."),
      f("optional", "bool", "Whether the ConfigMap may be missing."))
model(CORE, "SecretVolumeSource", "Files made from the keys of a Secret.",
      f("secretName", "string", "Name of the Secret in the pod's namespace."),
      f("items", "[]KeyToPath", "Keys to project; all keys when empty.", list_type="atomic"),
      f("defaultMode", "int32", "Mode bits of the files, octal 0000-0777; default 0644."),
      f("optional", "bool", "Whether the Secret may be missing."))
model(CORE, "PersistentVolumeClaimVolumeSource", "Mounts the volume bound to a claim.",
      f("claimName", "string", "Name of the claim in the pod's namespace.", required=True),
      f("readOnly", "bool", "Mount read-only."))
model(CORE, "NFSVolumeSource", "A directory exported over NFS.",
      f("server", "string", "Host name or IP of the NFS server.", required=True),
      f("path", "string", "Exported path.", required=True),
      f("readOnly", "bool", "Mount read-only."))
model(CORE, "CSIVolumeSource", "An ephemeral volume a CSI driver makes for the pod.",
      f("driver", "string", "Name of the CSI driver.", required=True),
      f("readOnly", "bool", "Mount read-only."),
      f("fsType", "string", "Filesystem type, such as ext4."),
      f("volumeAttributes", "{}string", "Driver-specific properties."),
      f("nodePublishSecretRef", "LocalObjectReference", "Secret passed to the driver."))
model(CORE, "Volume", "A named volume the pod's containers can mount. Set exactly one source.",
      f("name", "string", "Name of the volume, unique within the pod.", required=True),
      f("emptyDir", "EmptyDirVolumeSource", "A scratch directory living with the pod."),
      f("hostPath", "HostPathVolumeSource", "A path of the node."),
      f("configMap", "ConfigMapVolumeSource", "Files from a ConfigMap."),
      f("secret", "SecretVolumeSource", "Files from a Secret."),
      f("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource",
        "The volume bound to a claim."),
      f("nfs", "NFSVolumeSource", "An NFS export."),
      f("csi", "CSIVolumeSource", "An ephemeral CSI volume."))
model(CORE, "VolumeMount", "Where a volume is mounted in a container.",
      f("name", "string", "Name of the pod volume.", required=True),
      f("mountPath", "string", "Path in the container; must not contain ':'.", required=True),
      f("subPath", "string", "Path within the volume to mount instead of its root."),
      f("readOnly", "bool", "Mount read-only."),
      f("mountPropagation", "string", "None, HostToContainer or Bidirectional."))
model(CORE, "VolumeDevice", "Where a raw block volume appears in a container.",
      f("name", "string", "Name of the claim-backed pod volume.", required=True),
      f("devicePath", "string", "Device path in the container.", required=True))

# --- core/v1: containers ---------------------------------------------------------------

model(CORE, "ContainerPort", "A port the container listens on.",
      f("containerPort", "int32", "Port number, 1-65535.", required=True),
      f("name", "string", "IANA_SVC_NAME-style name, unique in the pod."),
      f("protocol", "string", "TCP, UDP or SCTP; default TCP."),
      f("hostPort", "int32", "Port on the node to expose it on."),
      f("hostIP", "string", "Node IP to bind the host port to."))
model(CORE, "EnvVar", "An environment variable of a container.",
      f("name", "string", "Name of the variable.", required=True),
      f("value", "string", "Value; $(VAR) references are expanded."),
      f("valueFrom", "EnvVarSource", "Where to read the value from instead."))
model(CORE, "EnvVarSource", "Where an environment variable's value comes from.",
      f("configMapKeyRef", "ConfigMapKeySelector", "A key of a ConfigMap."),
      f("secretKeyRef", "SecretKeySelector", "A key of a Secret."),
      f("fieldRef", "ObjectFieldSelector", "A field of the pod, such as metadata.name."),
      f("resourceFieldRef", "ResourceFieldSelector", "A resource limit or request."))
model(CORE, "ConfigMapKeySelector", "Selects a key of a ConfigMap.",
      f("name", "string", "Name of the ConfigMap."),
      f("key", "string", "The key.", required=True),
      f("optional", "bool", "Whether the ConfigMap or key may be missing."))
model(CORE, "SecretKeySelector", "Selects a key of a Secret.",
      f("name", "string", "Name of the Secret."),
      f("key", "string", "The key.", required=True),
      f("optional", "bool", "Whether the Secret or key may be missing."))
model(CORE, "ObjectFieldSelector", "Selects a field of the pod.",
      f("apiVersion", "string", "Version the field path is written in; default v1."),
      f("fieldPath", "string", "Path of the field.", required=True))
model(CORE, "ResourceFieldSelector", "Selects a resource of a container.",
      f("containerName", "string", "Container name; required for volumes."),
      f("resource", "string", "limits.cpu, requests.memory, ...", required=True),
      f("divisor", "Quantity", "Unit to express the value in; default 1."))
model(CORE, "EnvFromSource", "A source of many environment variables.",
      f("prefix", "string", "Prefix added to each variable name."),
      f("configMapRef", "ConfigMapEnvSource", "Every key of a ConfigMap."),
      f("secretRef", "SecretEnvSource", "Every key of a Secret."))
model(CORE, "ConfigMapEnvSource", "A ConfigMap whose keys become variables.",
      f("name", "string", "Name of the ConfigMap."),
      f("optional", "bool", "Whether it may be missing."))
model(CORE, "SecretEnvSource", "A Secret whose keys become variables.",
      f("name", "string", "Name of the Secret."),
      f("optional", "bool", "Whether it may be missing."))
model(CORE, "ExecAction", "Runs a command in the container.",
      f("command", "[]string", "Command and arguments; not run in a shell.", list_type="atomic"))
model(CORE, "HTTPHeader", "An HTTP header.",
      f("name", "string", "Header name.", required=True),
      f("value", "string", "Header value.", required=True))
model(CORE, "HTTPGetAction", "An HTTP GET request.",
      f("path", "string", "Path to request."),
      f("port", "IntOrString", "Port number or name.", required=True),
      f("host", "string", "Host to connect to; default the pod IP."),
      f("scheme", "string", "HTTP or HTTPS."),
      f("httpHeaders", "[]HTTPHeader", "Extra headers.", list_type="atomic"))
model(CORE, "TCPSocketAction", "Opens a TCP connection.",
      f("port", "IntOrString", "Port number or name.", required=True),
      f("host", "string", "Host to connect to; default the pod IP."))
model(CORE, "GRPCAction", "A gRPC health check (accepted; the storagelab kubelet does not run "
      "it).",
      f("port", "int32", "Port number of the gRPC service, 1-65535.", required=True),
      f("service", "string", "Service name for the gRPC health check."))
model(CORE, "Probe", "A health check of a container.",
      f("exec", "ExecAction", "Run a command."),
      f("httpGet", "HTTPGetAction", "Make an HTTP request."),
      f("tcpSocket", "TCPSocketAction", "Open a TCP connection."),
      f("grpc", "GRPCAction", "Call a gRPC health check."),
      f("initialDelaySeconds", "int32", "Seconds after start before the first probe."),
      f("timeoutSeconds", "int32", "Seconds before a probe times out; default 1."),
      f("periodSeconds", "int32", "Seconds between probes; default 10."),
      f("successThreshold", "int32", "Successes in a row to count as healthy; default 1."),
      f("failureThreshold", "int32", "Failures in a row to count as failed; default 3."),
      f("terminationGracePeriodSeconds", "int64", "Grace period when the probe fails."))
model(CORE, "SleepAction", "Sleeps for a while.",
      f("seconds", "int64", "Seconds to sleep.", required=True))
model(CORE, "LifecycleHandler", "An action run at a lifecycle event.",
      f("exec", "ExecAction", "Run a command."),
      f("httpGet", "HTTPGetAction", "Make an HTTP request."),
      f("tcpSocket", "TCPSocketAction", "Deprecated; not supported."),
      f("sleep", "SleepAction", "Sleep for a number of seconds."))
model(CORE, "Lifecycle", "Actions run when a container starts or stops.",
      f("postStart", "LifecycleHandler", "Run right after the container starts."),
      f("preStop", "LifecycleHandler", "Run before the container is stopped."))
model(CORE, "Capabilities", "Linux capabilities to add and drop.",
      f("add", "[]string", "Capabilities to add.", list_type="atomic"),
      f("drop", "[]string", "Capabilities to drop.", list_type="atomic"))
model(CORE, "SecurityContext", "Security settings of one container.",
      f("runAsUser", "int64", "UID to run as."),
      f("runAsGroup", "int64", "GID to run as."),
      f("runAsNonRoot", "bool", "Refuse to start as root."),
      f("privileged", "bool", "Run privileged."),
      f("readOnlyRootFilesystem", "bool", "Mount the root filesystem read-only."),
      f("allowPrivilegeEscalation", "bool", "Whether a process may gain privileges."),
      f("capabilities", "Capabilities", "Capabilities to add and drop."))
model(CORE, "PodSecurityContext", "Security settings of the whole pod.",
      f("runAsUser", "int64", "UID to run containers as."),
      f("runAsGroup", "int64", "GID to run containers as."),
      f("runAsNonRoot", "bool", "Refuse to start containers as root."),
      f("fsGroup", "int64", "Group that owns volumes and is added to every container."),
      f("fsGroupChangePolicy", "string", "OnRootMismatch or Always."),
      f("supplementalGroups", "[]int64", "Extra groups of the first process.", list_type="atomic"))
_CONTAINER_FIELDS = (
    f("name", "string", "Name of the container, a DNS label unique in the pod.",
      required=True),
    f("image", "string", "Container image to run."),
    f("command", "[]string", "Entrypoint; the image's ENTRYPOINT when empty.", list_type="atomic"),
    f("args", "[]string", "Arguments; the image's CMD when empty.", list_type="atomic"),
    f("workingDir", "string", "Working directory; the image's when empty."),
    f("ports", "[]ContainerPort", "Ports the container listens on.", merge="containerPort",
      keys=("containerPort", "protocol")),
    f("env", "[]EnvVar", "Environment variables.", merge="name"),
    f("envFrom", "[]EnvFromSource", "Sources of many variables at once.", list_type="atomic"),
    f("resources", "ResourceRequirements", "Compute resources it needs and may use."),
    f("volumeMounts", "[]VolumeMount", "Pod volumes to mount.", merge="mountPath"),
    f("volumeDevices", "[]VolumeDevice", "Block volumes to expose as devices.",
      merge="devicePath"),
    f("livenessProbe", "Probe", "Restart the container when this fails."),
    f("readinessProbe", "Probe", "Take the pod out of service when this fails."),
    f("startupProbe", "Probe", "Hold other probes until this succeeds."),
    f("lifecycle", "Lifecycle", "Actions at start and stop."),
    f("restartPolicy", "string", "For init containers only: Always makes it a sidecar."),
    f("terminationMessagePath", "string", "File the termination message is read from."),
    f("terminationMessagePolicy", "string", "File or FallbackToLogsOnError."),
    f("imagePullPolicy", "string", "Always, Never or IfNotPresent."),
    f("securityContext", "SecurityContext", "Security settings of the container."),
    f("stdin", "bool", "Keep a stdin open."),
    f("stdinOnce", "bool", "Close stdin after the first attach."),
    f("tty", "bool", "Allocate a TTY."),
)
model(CORE, "Container", "A container of a pod.", *_CONTAINER_FIELDS)
model(CORE, "Toleration", "Lets the pod run on nodes with a matching taint.",
      f("key", "string", "Taint key; empty matches all keys with Exists."),
      f("operator", "string", "Exists or Equal; default Equal."),
      f("value", "string", "Taint value for Equal."),
      f("effect", "string", "NoSchedule, PreferNoSchedule or NoExecute; empty for all."),
      f("tolerationSeconds", "int64", "How long a NoExecute taint is tolerated."))
model(CORE, "Affinity", "Scheduling constraints relative to nodes and other pods.",
      f("nodeAffinity", "object", "Rules about which nodes the pod prefers or requires."),
      f("podAffinity", "object", "Rules to run near other pods."),
      f("podAntiAffinity", "object", "Rules to run away from other pods."))
model(CORE, "PodReadinessGate", "An extra condition the pod needs to be ready.",
      f("conditionType", "string", "Type of the pod condition.", required=True))
model(CORE, "HostAlias", "An /etc/hosts entry for the pod.",
      f("ip", "string", "The IP address.", required=True),
      f("hostnames", "[]string", "Names for it.", list_type="atomic"))

# --- core/v1: pods ---------------------------------------------------------------------

model(CORE, "PodSpec", "What the pod runs and how.",
      f("volumes", "[]Volume", "Volumes the containers can mount.", merge="name",
        strategy="merge,retainKeys"),
      f("initContainers", "[]Container", "Containers run in order before the others.",
        merge="name"),
      f("containers", "[]Container", "The containers of the pod; at least one.",
        required=True, merge="name"),
      f("restartPolicy", "string", "Always, OnFailure or Never; default Always."),
      f("terminationGracePeriodSeconds", "int64", "Seconds to stop gracefully; default 30."),
      f("activeDeadlineSeconds", "int64", "Seconds the pod may run before it is failed."),
      f("dnsPolicy", "string", "ClusterFirst, Default, None or ClusterFirstWithHostNet."),
      f("nodeSelector", "{}string", "Labels a node must have to run the pod."),
      f("serviceAccountName", "string", "Service account the pod runs as."),
      f("automountServiceAccountToken", "bool", "Whether to mount the account's token."),
      f("nodeName", "string", "The node the pod is bound to; set by the scheduler."),
      f("hostNetwork", "bool", "Use the node's network namespace."),
      f("hostPID", "bool", "Use the node's PID namespace."),
      f("hostIPC", "bool", "Use the node's IPC namespace."),
      f("securityContext", "PodSecurityContext", "Security settings of the pod."),
      f("imagePullSecrets", "[]LocalObjectReference", "Secrets to pull images with.",
        merge="name"),
      f("hostname", "string", "Hostname of the pod; default the pod name."),
      f("subdomain", "string", "Subdomain of the pod's FQDN."),
      f("affinity", "Affinity", "Scheduling constraints."),
      f("schedulerName", "string", "Scheduler that places the pod."),
      f("tolerations", "[]Toleration", "Taints the pod tolerates.", list_type="atomic"),
      f("hostAliases", "[]HostAlias", "Extra /etc/hosts entries.", merge="ip"),
      f("priorityClassName", "string", "Name of the pod's PriorityClass."),
      f("priority", "int32", "Priority value, from the PriorityClass."),
      f("preemptionPolicy", "string", "Whether the pod may preempt lower priority pods."),
      f("runtimeClassName", "string", "RuntimeClass that runs the pod."),
      f("overhead", "{}Quantity", "Resources the pod's sandbox uses."),
      f("readinessGates", "[]PodReadinessGate", "Extra conditions for readiness.", list_type="atomic"),
      f("enableServiceLinks", "bool", "Inject service environment variables."),
      f("shareProcessNamespace", "bool", "Share one PID namespace between containers."))
model(CORE, "PodCondition", "One condition of a pod.",
      f("type", "string", "PodScheduled, Initialized, ContainersReady or Ready.",
        required=True),
      f("status", "string", "True, False or Unknown.", required=True),
      f("lastProbeTime", "Time", "When it was last probed."),
      f("lastTransitionTime", "Time", "When the status last changed."),
      f("reason", "string", "Why, in CamelCase."),
      f("message", "string", "Why, for humans."))
model(CORE, "ContainerStateWaiting", "A container that is not running yet.",
      f("reason", "string", "Why it waits, e.g. ContainerCreating or CrashLoopBackOff."),
      f("message", "string", "Details, for humans."))
model(CORE, "ContainerStateRunning", "A running container.",
      f("startedAt", "Time", "When it last started."))
model(CORE, "ContainerStateTerminated", "A container that has stopped.",
      f("exitCode", "int32", "Exit code of its process.", required=True),
      f("signal", "int32", "Signal that stopped it."),
      f("reason", "string", "Why it stopped, e.g. Completed or Error."),
      f("message", "string", "Details, for humans."),
      f("startedAt", "Time", "When it started."),
      f("finishedAt", "Time", "When it stopped."),
      f("containerID", "string", "Runtime id of the container, as <type>://<id>."))
model(CORE, "ContainerState", "State of a container; exactly one member is set.",
      f("waiting", "ContainerStateWaiting", "Not running yet."),
      f("running", "ContainerStateRunning", "Running."),
      f("terminated", "ContainerStateTerminated", "Stopped."))
model(CORE, "ContainerStatus", "What the node reports about one container.",
      f("name", "string", "Name of the container.", required=True),
      f("state", "ContainerState", "Current state."),
      f("lastState", "ContainerState", "State before the last restart."),
      f("ready", "bool", "Whether its readiness probe passes.", required=True),
      f("restartCount", "int32", "Times it has restarted.", required=True),
      f("image", "string", "Image it runs.", required=True),
      f("imageID", "string", "Id of that image.", required=True),
      f("containerID", "string", "Runtime id, as <type>://<id>."),
      f("started", "bool", "Whether its startup probe passed."))
model(CORE, "PodIP", "One IP address of a pod.", f("ip", "string", "The address."))
model(CORE, "HostIP", "One IP address of the pod's node.", f("ip", "string", "The address."))
model(CORE, "PodStatus", "Observed state of a pod.",
      f("phase", "string", "Pending, Running, Succeeded, Failed or Unknown."),
      f("conditions", "[]PodCondition", "Current conditions.", merge="type"),
      f("message", "string", "Why the pod is in this state, for humans."),
      f("reason", "string", "Why, in CamelCase, e.g. Evicted."),
      f("nominatedNodeName", "string", "Node the scheduler is preempting pods on for it."),
      f("hostIP", "string", "IP of the node."),
      f("hostIPs", "[]HostIP", "IPs of the node.", list_type="atomic"),
      f("podIP", "string", "IP of the pod."),
      f("podIPs", "[]PodIP", "IPs of the pod.", merge="ip"),
      f("startTime", "Time", "When the node accepted the pod."),
      f("initContainerStatuses", "[]ContainerStatus", "Init container states.", list_type="atomic"),
      f("containerStatuses", "[]ContainerStatus", "Container states.", list_type="atomic"),
      f("qosClass", "string", "Guaranteed, Burstable or BestEffort."))
kind_model(CORE, "Pod", "", "v1", "A group of containers that run together on one node.",
           f("spec", "PodSpec", "What the pod runs."),
           f("status", "PodStatus", "What the node observes. Read-only."))

# --- core/v1: nodes and namespaces -----------------------------------------------------

model(CORE, "Taint", "Keeps pods that do not tolerate it off a node.",
      f("key", "string", "Taint key.", required=True),
      f("value", "string", "Taint value."),
      f("effect", "string", "NoSchedule, PreferNoSchedule or NoExecute.", required=True),
      f("timeAdded", "Time", "When a NoExecute taint was added."))
model(CORE, "NodeSpec", "How a node is set up.",
      f("podCIDR", "string", "Pod IP range of the node."),
      f("podCIDRs", "[]string", "Pod IP ranges of the node.", strategy="merge", list_type="set"),
      f("providerID", "string", "Id of the node at its provider."),
      f("unschedulable", "bool", "Keep new pods off the node (cordon)."),
      f("taints", "[]Taint", "Taints of the node.", list_type="atomic"))
model(CORE, "NodeCondition", "One condition of a node.",
      f("type", "string", "Ready, MemoryPressure, DiskPressure, PIDPressure, ...",
        required=True),
      f("status", "string", "True, False or Unknown.", required=True),
      f("lastHeartbeatTime", "Time", "When the kubelet last reported it."),
      f("lastTransitionTime", "Time", "When the status last changed."),
      f("reason", "string", "Why, in CamelCase."),
      f("message", "string", "Why, for humans."))
model(CORE, "NodeAddress", "An address of a node.",
      f("type", "string", "Hostname, InternalIP or ExternalIP.", required=True),
      f("address", "string", "The address.", required=True))
model(CORE, "NodeSystemInfo", "What runs on a node.",
      f("machineID", "string", "Machine id.", required=True),
      f("systemUUID", "string", "System UUID.", required=True),
      f("bootID", "string", "Boot id.", required=True),
      f("kernelVersion", "string", "Kernel version.", required=True),
      f("osImage", "string", "Operating system image.", required=True),
      f("containerRuntimeVersion", "string", "Container runtime and version.", required=True),
      f("kubeletVersion", "string", "Kubelet version.", required=True),
      f("kubeProxyVersion", "string", "Deprecated.", required=True),
      f("operatingSystem", "string", "Operating system.", required=True),
      f("architecture", "string", "CPU architecture.", required=True))
model(CORE, "AttachedVolume", "A volume attached to a node.",
      f("name", "string", "Name of the volume.", required=True),
      f("devicePath", "string", "Where it is available.", required=True))
model(CORE, "NodeStatus", "Observed state of a node.",
      f("capacity", "{}Quantity", "Total resources of the node."),
      f("allocatable", "{}Quantity", "Resources available to pods."),
      f("phase", "string", "Deprecated."),
      f("conditions", "[]NodeCondition", "Current conditions.", merge="type"),
      f("addresses", "[]NodeAddress", "Addresses of the node.", merge="type"),
      f("nodeInfo", "NodeSystemInfo", "What runs on the node."),
      f("volumesInUse", "[]string", "Volumes mounted on the node.", list_type="atomic"),
      f("volumesAttached", "[]AttachedVolume", "Volumes attached to the node.", list_type="atomic"),
      f("daemonEndpoints", "NodeDaemonEndpoints", "Ports of the daemons on the node."),
      f("images", "[]ContainerImage", "Images present on the node.", list_type="atomic"))
model(CORE, "DaemonEndpoint", "A port a node daemon listens on.",
      f("Port", "int32", "The port number.", required=True))
model(CORE, "NodeDaemonEndpoints", "Ports of the daemons on a node.",
      f("kubeletEndpoint", "DaemonEndpoint", "The kubelet's port."))
model(CORE, "ContainerImage", "An image present on a node.",
      f("names", "[]string", "Names of the image.", list_type="atomic"),
      f("sizeBytes", "int64", "Size of the image in bytes."))
kind_model(CORE, "Node", "", "v1", "A machine that runs pods.",
           f("spec", "NodeSpec", "How the node is set up."),
           f("status", "NodeStatus", "What the kubelet observes. Read-only."))
model(CORE, "NamespaceSpec", "How a namespace is set up.",
      f("finalizers", "[]string", "Must be empty before the namespace is removed.", list_type="atomic"))
model(CORE, "NamespaceCondition", "One condition of a namespace.",
      f("type", "string", "Type of the condition.", required=True),
      f("status", "string", "True, False or Unknown.", required=True),
      f("lastTransitionTime", "Time", "When the status last changed."),
      f("reason", "string", "Why, in CamelCase."),
      f("message", "string", "Why, for humans."))
model(CORE, "NamespaceStatus", "Observed state of a namespace.",
      f("phase", "string", "Active or Terminating."),
      f("conditions", "[]NamespaceCondition", "Current conditions.", merge="type"))
kind_model(CORE, "Namespace", "", "v1", "A scope for names; most objects live in one.",
           f("spec", "NamespaceSpec", "How the namespace is set up."),
           f("status", "NamespaceStatus", "Observed state. Read-only."))

# --- core/v1: persistent storage -------------------------------------------------------

_ACCESS_MODES = "How the volume may be mounted: ReadWriteOnce, ReadOnlyMany, " \
                "ReadWriteMany or ReadWriteOncePod."
model(CORE, "LocalVolumeSource", "A disk, partition or directory of one node.",
      f("path", "string", "Full path on the node.", required=True),
      f("fsType", "string", "Filesystem type, for block devices."))
model(CORE, "CSIPersistentVolumeSource", "A volume managed by a CSI driver.",
      f("driver", "string", "Name of the CSI driver.", required=True),
      f("volumeHandle", "string", "The driver's id of the volume.", required=True),
      f("readOnly", "bool", "Publish read-only."),
      f("fsType", "string", "Filesystem type, such as ext4."),
      f("volumeAttributes", "{}string", "Driver-specific properties."),
      f("controllerPublishSecretRef", "SecretReference", "Secret for ControllerPublish."),
      f("nodeStageSecretRef", "SecretReference", "Secret for NodeStage."),
      f("nodePublishSecretRef", "SecretReference", "Secret for NodePublish."),
      f("controllerExpandSecretRef", "SecretReference", "Secret for ControllerExpand."),
      f("nodeExpandSecretRef", "SecretReference", "Secret for NodeExpand."))
model(CORE, "VolumeNodeAffinity", "The nodes a volume can be used from.",
      f("required", "NodeSelector", "Nodes that must match."))
model(CORE, "PersistentVolumeSpec", "What a persistent volume is and where it lives.",
      f("capacity", "{}Quantity", "Size of the volume, as capacity.storage."),
      f("accessModes", "[]string", _ACCESS_MODES, list_type="atomic"),
      f("claimRef", "ObjectReference", "The claim bound to this volume."),
      f("persistentVolumeReclaimPolicy", "string", "What happens once the claim is "
        "released: Retain, Delete or Recycle. Default Retain; Delete for provisioned ones."),
      f("storageClassName", "string", "StorageClass the volume belongs to; empty for none."),
      f("mountOptions", "[]string", "Mount options, not validated.", list_type="atomic"),
      f("volumeMode", "string", "Filesystem or Block; default Filesystem."),
      f("nodeAffinity", "VolumeNodeAffinity", "Nodes the volume is reachable from."),
      f("volumeAttributesClassName", "string", "VolumeAttributesClass of the volume."),
      f("hostPath", "HostPathVolumeSource", "A directory of the node; testing only."),
      f("local", "LocalVolumeSource", "A local disk or directory of one node."),
      f("nfs", "NFSVolumeSource", "An NFS export."),
      f("csi", "CSIPersistentVolumeSource", "A volume of a CSI driver."))
model(CORE, "PersistentVolumeStatus", "Observed state of a persistent volume.",
      f("phase", "string", "Pending, Available, Bound, Released or Failed."),
      f("message", "string", "Why the volume is in this phase, for humans."),
      f("reason", "string", "Why, in CamelCase, for failures."),
      f("lastPhaseTransitionTime", "Time", "When the phase last changed."))
kind_model(CORE, "PersistentVolume", "", "v1",
           "A piece of storage provisioned by an administrator or a StorageClass.",
           f("spec", "PersistentVolumeSpec", "What the volume is."),
           f("status", "PersistentVolumeStatus", "Observed state. Read-only."))
model(CORE, "VolumeResourceRequirements", "Storage a claim asks for.",
      f("requests", "{}Quantity", "Least storage needed, as requests.storage."),
      f("limits", "{}Quantity", "Most storage allowed."))
model(CORE, "PersistentVolumeClaimSpec", "What a claim asks of storage.",
      f("accessModes", "[]string", _ACCESS_MODES, list_type="atomic"),
      f("selector", "meta.LabelSelector", "Labels the bound volume must have."),
      f("resources", "VolumeResourceRequirements", "Storage the claim needs."),
      f("volumeName", "string", "Name of the bound volume; set to ask for one volume."),
      f("storageClassName", "string", "StorageClass to bind or provision from; \"\" "
        "asks for a volume without class, unset takes the default class."),
      f("volumeMode", "string", "Filesystem or Block; default Filesystem."),
      f("dataSource", "TypedLocalObjectReference", "Object to fill the new volume from."),
      f("dataSourceRef", "TypedObjectReference", "Object to fill the new volume from, "
        "any kind."),
      f("volumeAttributesClassName", "string", "VolumeAttributesClass for the volume."))
model(CORE, "PersistentVolumeClaimCondition", "One condition of a claim.",
      f("type", "string", "Resizing, FileSystemResizePending, ...", required=True),
      f("status", "string", "True, False or Unknown.", required=True),
      f("lastProbeTime", "Time", "When it was last probed."),
      f("lastTransitionTime", "Time", "When the status last changed."),
      f("reason", "string", "Why, in CamelCase."),
      f("message", "string", "Why, for humans."))
model(CORE, "PersistentVolumeClaimStatus", "Observed state of a claim.",
      f("phase", "string", "Pending, Bound or Lost."),
      f("accessModes", "[]string", "Access modes of the bound volume.", list_type="atomic"),
      f("capacity", "{}Quantity", "Size of the bound volume."),
      f("conditions", "[]PersistentVolumeClaimCondition", "Current conditions.",
        merge="type"),
      f("allocatedResources", "{}Quantity", "Storage allocated while resizing."),
      f("allocatedResourceStatuses", "{}string", "Resize state per resource."),
      f("currentVolumeAttributesClassName", "string", "VolumeAttributesClass in effect."))
kind_model(CORE, "PersistentVolumeClaim", "", "v1", "A user's request for storage.",
           f("spec", "PersistentVolumeClaimSpec", "What is asked for."),
           f("status", "PersistentVolumeClaimStatus", "Observed state. Read-only."))

# --- core/v1: configuration and events -------------------------------------------------

kind_model(CORE, "ConfigMap", "", "v1", "Configuration data for pods, as key/value pairs.",
           f("data", "{}string", "UTF-8 values by key."),
           f("binaryData", "{}byte", "Binary values by key, base64 encoded."),
           f("immutable", "bool", "Forbid changes to the data once set."))
kind_model(CORE, "Secret", "", "v1", "Sensitive data for pods, kept encrypted at rest.",
           f("data", "{}byte", "Values by key, base64 encoded."),
           f("stringData", "{}string", "Write-only plain-text values, merged into data."),
           f("type", "string", "Type of secret, e.g. Opaque or kubernetes.io/tls."),
           f("immutable", "bool", "Forbid changes to the data once set."))
model(CORE, "EventSource", "The component that reported an event.",
      f("component", "string", "Component name."),
      f("host", "string", "Node name."))
model(CORE, "EventSeries", "A run of repeated events.",
      f("count", "int32", "Occurrences so far."),
      f("lastObservedTime", "MicroTime", "When the last one was seen."))
kind_model(CORE, "Event", "", "v1", "A report of something that happened in the cluster.",
           f("involvedObject", "ObjectReference", "The object it is about.", required=True),
           f("reason", "string", "Why, in CamelCase, e.g. ProvisioningSucceeded."),
           f("message", "string", "What happened, for humans."),
           f("source", "EventSource", "Who reported it."),
           f("firstTimestamp", "Time", "When it was first seen."),
           f("lastTimestamp", "Time", "When it was last seen."),
           f("count", "int32", "How many times it happened."),
           f("type", "string", "Normal or Warning."),
           f("eventTime", "MicroTime", "When it first happened, precisely."),
           f("series", "EventSeries", "The run of repeats it belongs to."),
           f("action", "string", "What was done or failed."),
           f("related", "ObjectReference", "A second object involved."),
           f("reportingComponent", "string", "Controller that reported it."),
           f("reportingInstance", "string", "Instance of that controller."))

# --- storage.k8s.io/v1, coordination.k8s.io/v1 -----------------------------------------

kind_model(STORAGE, "StorageClass", "storage.k8s.io", "v1",
           "A class of storage that volumes are dynamically provisioned from.",
           f("provisioner", "string", "Name of the provisioner.", required=True),
           f("parameters", "{}string", "Parameters for the provisioner."),
           f("reclaimPolicy", "string", "Delete or Retain for provisioned volumes; "
             "default Delete."),
           f("mountOptions", "[]string", "Mount options of provisioned volumes.", list_type="atomic"),
           f("allowVolumeExpansion", "bool", "Whether claims of this class may grow."),
           f("volumeBindingMode", "string", "Immediate or WaitForFirstConsumer; "
             "default Immediate."),
           f("allowedTopologies", "[]core.TopologySelectorTerm", "Where volumes may be "
             "provisioned.", list_type="atomic"))
model(STORAGE, "TokenRequest", "A service account token the kubelet passes to the driver.",
      f("audience", "string", "Intended audience of the token.", required=True),
      f("expirationSeconds", "int64", "Validity of the token in seconds; at least 600."))
model(STORAGE, "CSIDriverSpec", "How Kubernetes treats the volumes of a CSI driver.",
      f("attachRequired", "bool", "Whether volumes must be attached (ControllerPublish) "
        "before they are mounted; default true. Immutable."),
      f("fsGroupPolicy", "string", "How pod fsGroup applies to the volumes: "
        "ReadWriteOnceWithFSType (default), File or None."),
      f("podInfoOnMount", "bool", "Whether the kubelet passes the pod's name, namespace and "
        "uid when it publishes a volume; default false."),
      f("requiresRepublish", "bool", "Whether NodePublishVolume is called periodically; "
        "default false."),
      f("seLinuxMount", "bool", "Whether the driver supports the -o context mount option; "
        "default false."),
      f("storageCapacity", "bool", "Whether the scheduler consults CSIStorageCapacity "
        "objects of this driver before it places a pod whose volume is not provisioned yet; "
        "default false."),
      f("tokenRequests", "[]TokenRequest", "Service account tokens the driver needs.",
        list_type="atomic"),
      f("volumeLifecycleModes", "[]string", "Persistent and/or Ephemeral; default "
        "Persistent. Immutable.", list_type="set"))
kind_model(STORAGE, "CSIDriver", "storage.k8s.io", "v1",
           "A CSI volume driver deployed in the cluster; its name is the driver's name.",
           f("spec", "CSIDriverSpec", "How Kubernetes treats the driver's volumes.",
             required=True))
kind_model(STORAGE, "CSIStorageCapacity", "storage.k8s.io", "v1",
           "The result of one GetCapacity call: the capacity a StorageClass has left in one "
           "topology segment (for local volumes, one node). The scheduler reads it for "
           "drivers whose CSIDriver says storageCapacity: true; no object, an unset or a zero "
           "capacity all mean that no capacity is available there.",
           f("nodeTopology", "meta.LabelSelector", "The nodes that can reach this storage; "
             "unset means none. Immutable."),
           f("storageClassName", "string", "The StorageClass the capacity was reported for. "
             "Immutable.", required=True),
           f("capacity", "Quantity", "Space available for new volumes of the class in this "
             "segment, as the driver reported it."),
           f("maximumVolumeSize", "Quantity", "The largest volume that can be created there; "
             "the scheduler prefers it over capacity when set."))
model(STORAGE, "VolumeAttachmentSource", "The volume to attach: exactly one member is set.",
      f("persistentVolumeName", "string", "Name of the PersistentVolume to attach."),
      f("inlineVolumeSpec", "core.PersistentVolumeSpec", "A pod's inline volume translated "
        "to a PersistentVolumeSpec (CSI migration only)."))
model(STORAGE, "VolumeAttachmentSpec", "What to attach, by which attacher, to which node.",
      f("attacher", "string", "The CSI driver name that must handle this attachment.",
        required=True),
      f("source", "VolumeAttachmentSource", "The volume to attach.", required=True),
      f("nodeName", "string", "The node the volume is attached to.", required=True))
model(STORAGE, "VolumeError", "An error seen by the attacher.",
      f("message", "string", "What went wrong; may be logged, must not hold secrets."),
      f("time", "Time", "When the error was seen."),
      f("errorCode", "int32", "The numeric gRPC code of the error, if any."))
model(STORAGE, "VolumeAttachmentStatus", "What the attacher reports.",
      f("attached", "bool", "Whether the attach operation succeeded. Set by the attacher "
        "only.", required=True),
      f("attachmentMetadata", "{}string", "What the attach returned, handed to the node "
        "(WaitForAttach, Mount). Set by the attacher only."),
      f("attachError", "VolumeError", "The last error of an attach, if any."),
      f("detachError", "VolumeError", "The last error of a detach, if any."))
kind_model(STORAGE, "VolumeAttachment", "storage.k8s.io", "v1",
           "The intent to attach a volume to a node, and its outcome. The attach/detach "
           "controller creates and deletes them; the CSI driver's attacher attaches and "
           "reports. Cluster-scoped.",
           f("spec", "VolumeAttachmentSpec", "The desired attach/detach behaviour. Immutable.",
             required=True),
           f("status", "VolumeAttachmentStatus", "The attacher's report. Read-only."))
model(COORDINATION, "LeaseSpec", "Who holds a lease and until when.",
      f("holderIdentity", "string", "Current holder."),
      f("leaseDurationSeconds", "int32", "Seconds a holder must renew within."),
      f("acquireTime", "MicroTime", "When the current holder acquired it."),
      f("renewTime", "MicroTime", "When the holder last renewed it."),
      f("leaseTransitions", "int32", "Times it changed hands."),
      f("strategy", "string", "How the next holder is chosen."),
      f("preferredHolder", "string", "Holder to hand over to."))
kind_model(COORDINATION, "Lease", "coordination.k8s.io", "v1",
           "A lock with a lease time, for leader election and node heartbeats.",
           f("spec", "LeaseSpec", "Who holds the lease."))

# --- rbac.authorization.k8s.io/v1 ------------------------------------------------------

_RBAC = "rbac.authorization.k8s.io"
model(RBAC, "PolicyRule", "Actions allowed on some resources or URLs.",
      f("verbs", "[]string", "Verbs allowed: get, list, watch, create, update, patch, "
        "delete, deletecollection, or *.", required=True, list_type="atomic"),
      f("apiGroups", "[]string", "API groups of the resources; \"\" is the core group.",
        list_type="atomic"),
      f("resources", "[]string", "Resources, maybe with subresource (pods/status), or *.",
        list_type="atomic"),
      f("resourceNames", "[]string", "Names the rule is limited to.", list_type="atomic"),
      f("nonResourceURLs", "[]string", "URL paths such as /healthz, for ClusterRoles.",
        list_type="atomic"))
model(RBAC, "AggregationRule", "Builds a ClusterRole from others.",
      f("clusterRoleSelectors", "[]meta.LabelSelector", "ClusterRoles to aggregate.",
        list_type="atomic"))
model(RBAC, "Subject", "A user, group or service account.",
      f("kind", "string", "User, Group or ServiceAccount.", required=True),
      f("apiGroup", "string", "rbac.authorization.k8s.io for users and groups."),
      f("name", "string", "Name of the subject.", required=True),
      f("namespace", "string", "Namespace of a service account."))
model(RBAC, "RoleRef", "The role a binding grants.",
      f("apiGroup", "string", "API group of the role.", required=True),
      f("kind", "string", "Role or ClusterRole.", required=True),
      f("name", "string", "Name of the role.", required=True))
kind_model(RBAC, "Role", _RBAC, "v1", "Permissions within one namespace.",
           f("rules", "[]PolicyRule", "The permissions.", list_type="atomic"))
kind_model(RBAC, "ClusterRole", _RBAC, "v1", "Permissions across the cluster.",
           f("rules", "[]PolicyRule", "The permissions.", list_type="atomic"),
           f("aggregationRule", "AggregationRule", "Build rules from other ClusterRoles."))
kind_model(RBAC, "RoleBinding", _RBAC, "v1", "Grants a role to subjects in a namespace.",
           f("subjects", "[]Subject", "Who is granted the role.", list_type="atomic"),
           f("roleRef", "RoleRef", "The role granted; cannot be updated.", required=True))
kind_model(RBAC, "ClusterRoleBinding", _RBAC, "v1", "Grants a ClusterRole cluster-wide.",
           f("subjects", "[]Subject", "Who is granted the role.", list_type="atomic"),
           f("roleRef", "RoleRef", "The role granted; cannot be updated.", required=True))

# --- authorization.k8s.io/v1 -----------------------------------------------------------

model(AUTHORIZATION, "ResourceAttributes", "A request on a resource.",
      f("namespace", "string", "Namespace of the request."),
      f("verb", "string", "Verb, such as get or create."),
      f("group", "string", "API group."),
      f("version", "string", "API version."),
      f("resource", "string", "Resource, such as persistentvolumeclaims."),
      f("subresource", "string", "Subresource, such as status."),
      f("name", "string", "Name of the object."))
model(AUTHORIZATION, "NonResourceAttributes", "A request on a URL path.",
      f("path", "string", "The URL path."),
      f("verb", "string", "The HTTP verb, lower case."))
model(AUTHORIZATION, "SelfSubjectAccessReviewSpec", "The request to check; set one.",
      f("resourceAttributes", "ResourceAttributes", "A resource request."),
      f("nonResourceAttributes", "NonResourceAttributes", "A URL request."))
model(AUTHORIZATION, "SubjectAccessReviewStatus", "The answer.",
      f("allowed", "bool", "Whether the request is allowed.", required=True),
      f("denied", "bool", "Whether it is explicitly denied."),
      f("reason", "string", "Why."),
      f("evaluationError", "string", "Errors met while deciding."))
kind_model(AUTHORIZATION, "SelfSubjectAccessReview", "authorization.k8s.io", "v1",
           "Asks whether the current user may perform an action (kubectl auth can-i).",
           f("spec", "SelfSubjectAccessReviewSpec", "The request to check.", required=True),
           f("status", "SubjectAccessReviewStatus", "The answer, filled in by the server."))
