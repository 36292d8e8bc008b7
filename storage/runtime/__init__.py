"""The controller runtime every storagelab controller reuses, on top of lightkube.

`kube` is the one place that talks to the API (dicts in, dicts out, typed errors);
`informer` keeps a local cache fed by list and watch; `workqueue` hands keys to workers with
per-key exponential backoff; `controller` is the loop that runs a `reconcile(key)`;
`leaderelection` makes sure only one copy of the controller-manager acts; `events` records
core/v1 Events the way client-go's recorder does, aggregating repeats.
"""
