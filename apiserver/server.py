"""Serving the app over HTTPS with client certificates, as kube-apiserver does.

Uvicorn does the HTTP; a small protocol subclass hands the verified client certificate to
the app in the ASGI scope (`extensions.tls.client_cert`, DER), which is how the
authenticator learns who is calling. `prepare(config)` creates the PKI and the encryption
configuration on first start; `serve(config)` runs until stopped.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from apiserver import app as app_module
from apiserver import config, encryption, kubeconfig, pki

logger = logging.getLogger(__name__)


class ClientCertProtocol(HttpToolsProtocol):
    """HTTP/1.1 that puts the TLS peer certificate into each request's scope."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            self.scope["extensions"] = {"tls": {"client_cert": der}}  # type: ignore[typeddict-unknown-key]


def prepare(cfg: config.ServerConfig) -> config.ServerConfig:
    """First-start setup: data dir, PKI, encryption config, admin kubeconfig."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if cfg.tls:
        issued = pki.ensure_pki(cfg.pki_dir, hostnames=list(cfg.hostnames))
        kubeconfig.write_kubeconfig(cfg.data_dir / "kubeconfig",
                                    kubeconfig.admin_kubeconfig(issued, cfg.url))
    if cfg.encryption_config is None:
        path = cfg.data_dir / "encryption-config.yaml"
        encryption.ensure_encryption_config(path)
        cfg = _replace(cfg, encryption_config=path)
    return cfg


def _replace(cfg: config.ServerConfig, **changes: Any) -> config.ServerConfig:
    import dataclasses
    return dataclasses.replace(cfg, **changes)


def uvicorn_config(cfg: config.ServerConfig, application: Any) -> uvicorn.Config:
    kwargs: dict[str, Any] = {}
    if cfg.tls:
        kwargs = dict(ssl_certfile=str(cfg.pki_dir / "apiserver.crt"),
                      ssl_keyfile=str(cfg.pki_dir / "apiserver.key"),
                      ssl_ca_certs=str(cfg.pki_dir / "ca.crt"),
                      ssl_cert_reqs=ssl.CERT_OPTIONAL, http=ClientCertProtocol)
    return uvicorn.Config(application, host=cfg.host, port=cfg.port, log_level="warning",
                          timeout_graceful_shutdown=2, backlog=2048, **kwargs)


def serve(cfg: config.ServerConfig) -> None:
    cfg = prepare(cfg)
    application = app_module.create_app(cfg)
    server = uvicorn.Server(uvicorn_config(cfg, application))
    logger.info("apiserver listening on %s", cfg.url)
    server.run()
