# The `pacs` profile's archive: Orthanc with its DICOMweb plugin, from Debian's packages (the ones the tests use).
# A test archive (no authentication): a hospital points USQA_PACS_URL at its own PACS instead.
FROM debian:bookworm-slim
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb curl \
    && rm -rf /var/lib/apt/lists/*
COPY docker/orthanc/orthanc.json /etc/orthanc-usqa/orthanc.json
# The same uid as the other images; it owns the archive's volume.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent usqa \
    && mkdir -p /var/lib/orthanc/db && chown usqa /var/lib/orthanc/db
USER usqa
EXPOSE 8042 4242
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD curl -fsS http://127.0.0.1:8042/system >/dev/null || exit 1
CMD ["Orthanc", "/etc/orthanc-usqa/orthanc.json"]
