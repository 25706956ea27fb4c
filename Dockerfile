# kdns container image: a multi-stage build into /opt/venv on Debian 12's
# Python 3.11, run as a numeric non-root user; works with a read-only root
# filesystem (bytecode and Twisted's plugin cache are generated here).
#
#   docker build -t kdns .
#   docker run --rm -p 1053:53/udp kdns --corefile /etc/kdns/Corefile
#
# No Docker engine?  `make image-rootfs` runs the same build-venv.sh into a
# directory and starts kdns from a read-only copy as uid 65532.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY . /src
RUN sh etc/container/build-venv.sh /src /opt/venv python3

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kdns" \
      org.opencontainers.image.description="A CoreDNS-compatible DNS server for Kubernetes, on Twisted" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /opt/venv /opt/venv
# The cluster Corefile; Kubernetes mounts the kdns ConfigMap over /etc/kdns.
COPY etc/Corefile.cluster /etc/kdns/Corefile
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that Kubernetes' runAsNonRoot can verify it.  Port 53 needs
# net.ipv4.ip_unprivileged_port_start=53 (pod sysctl; Docker sets it).
USER 65532:65532
EXPOSE 53/udp 53/tcp 8080/tcp 8181/tcp 9153/tcp
ENTRYPOINT ["kdns"]
CMD ["--corefile", "/etc/kdns/Corefile"]
