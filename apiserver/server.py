"""Serving the app over HTTPS with client certificates, as kube-apiserver does.

Uvicorn does the HTTP; a small protocol subclass hands the verified client certificate to
the app in the ASGI scope (`extensions.tls.client_cert`, DER), which is how the
authenticator learns who is calling. `prepare(config)` creates the PKI and the encryption
configuration on first start; `serve(config)` runs until stopped.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from apiserver import app as app_module
from apiserver import authn, config, encryption, kubeconfig, pki

logger = logging.getLogger(__name__)

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (not exported by the ssl module).
X509_V_FLAG_NO_CHECK_TIME = 0x200000


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


class ClientCertWebSocketProtocol(WebSocketsSansIOProtocol):
    """WebSockets (`kubectl exec`) that the security middleware can judge like HTTP.

    The scope gets the client certificate and the upgrade request's method (RBAC's verb
    comes from it: a WebSocket exec is a GET); the middleware's 401/403 replies, written as
    `http.response.*`, become the handshake's denial response (`websocket.http.response.*`).
    """

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not hasattr(self, "scope"):
            return  # the handshake was refused before any app saw it
        self.scope["method"] = "GET"  # type: ignore[typeddict-unknown-key]
        ssl_object = self.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.scope["extensions"]["tls"] = {"client_cert": der}  # type: ignore[index]

    async def send(self, message: Any) -> None:
        if not self.handshake_complete and message["type"].startswith("http.response."):
            message = {**message, "type": f"websocket.{message['type']}"}
        await super().send(message)


def check_files(cfg: config.ServerConfig) -> None:
    """Validate the given configuration files before anything is created or opened.

    A malformed EncryptionConfiguration or token file must stop the start with the field or
    line named, and leave the data dir and the store exactly as they were.
    """
    try:
        if cfg.encryption_config is not None:
            encryption.load_encryption_config(cfg.encryption_config)
        if cfg.token_auth_file is not None:
            authn.TokenFile.load(cfg.token_auth_file)
    except encryption.EncryptionConfigError as e:
        raise config.ConfigError(
            f"encryption-provider-config {cfg.encryption_config}: {e}") from e
    except authn.TokenFileError as e:
        raise config.ConfigError(f"token-auth-file: {e}") from e


def prepare(cfg: config.ServerConfig) -> config.ServerConfig:
    """First-start setup: data dir, PKI, encryption config, admin kubeconfig.

    The default EncryptionConfiguration (`<data dir>/encryption-config.yaml`) is generated on
    the first start only; an existing one, edited during a key rotation, is validated first.
    """
    default_config = cfg.data_dir / "encryption-config.yaml"
    if cfg.encryption_config is None and default_config.exists():
        cfg = _replace(cfg, encryption_config=default_config)
    check_files(cfg)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if cfg.tls:
        issued = pki.ensure_pki(cfg.pki_dir, hostnames=list(cfg.hostnames))
        kubeconfig.write_kubeconfig(cfg.data_dir / "kubeconfig",
                                    kubeconfig.admin_kubeconfig(issued, cfg.url))
        controllers = issued.controllers
        kubeconfig.write_kubeconfig(
            cfg.data_dir / "controller-manager.kubeconfig",
            kubeconfig.build_kubeconfig(cfg.url, issued.ca_pem, controllers.cert_pem(),
                                        controllers.key_pem(),
                                        user="system:kube-controller-manager"))
    if cfg.encryption_config is None:
        encryption.ensure_encryption_config(default_config)
        cfg = _replace(cfg, encryption_config=default_config)
    return cfg


def write_node_kubeconfig(cfg: config.ServerConfig, node: str) -> Path:
    """A kubelet's kubeconfig (CN=system:node:<node>, O=system:nodes) in the data dir."""
    issued = pki.ensure_pki(cfg.pki_dir, hostnames=list(cfg.hostnames))
    files = pki.node_cert(issued, node)
    path = cfg.data_dir / f"kubelet-{node}.kubeconfig"
    kubeconfig.write_kubeconfig(path, kubeconfig.build_kubeconfig(
        cfg.url, issued.ca_pem, files.cert_pem(), files.key_pem(), user=f"system:node:{node}"))
    return path


def _replace(cfg: config.ServerConfig, **changes: Any) -> config.ServerConfig:
    import dataclasses
    return dataclasses.replace(cfg, **changes)


def uvicorn_config(cfg: config.ServerConfig, application: Any) -> uvicorn.Config:
    kwargs: dict[str, Any] = {}
    if cfg.tls:
        kwargs = {"ssl_certfile": str(cfg.pki_dir / "apiserver.crt"),
                  "ssl_keyfile": str(cfg.pki_dir / "apiserver.key"),
                  "ssl_ca_certs": str(cfg.pki_dir / "ca.crt"),
                  "ssl_cert_reqs": ssl.CERT_OPTIONAL, "http": ClientCertProtocol,
                  "ws": ClientCertWebSocketProtocol}
    return uvicorn.Config(application, host=cfg.host, port=cfg.port, log_level="warning",
                          timeout_graceful_shutdown=2, backlog=2048, **kwargs)


def serve(cfg: config.ServerConfig) -> None:
    try:
        cfg = prepare(cfg)
        application = app_module.create_app(cfg)
    except (config.ConfigError, pki.PkiError) as e:
        # A clear one-line refusal (exit status 1), not a traceback.
        raise SystemExit(f"storagelab: apiserver refuses to start: {e}") from e
    uv_config = uvicorn_config(cfg, application)
    uv_config.load()
    if uv_config.ssl is not None:
        # kube-apiserver only *requests* a client certificate (tls.RequestClientCert) and
        # lets the authenticator judge it, so an expired one gets 401 Unauthorized rather
        # than a reset connection. OpenSSL cannot skip verification, but it can skip the
        # time check; the authenticator checks the validity period (authn, 401 + log).
        uv_config.ssl.verify_flags |= X509_V_FLAG_NO_CHECK_TIME  # type: ignore[assignment]
    server = uvicorn.Server(uv_config)
    logger.info("apiserver listening on %s", cfg.url)
    server.run()
