# The grader's image for NVIDIA GPUs: official vLLM image + our server (requirements.txt only)
# + the model, offline at run. Checked without Docker Hub or a GPU: scripts/image_check.sh.
#   DOCKER_BUILDKIT=1 docker build -t qa --build-arg MODEL_ID=you/your-model \
#       --secret id=modelscope_token,env=MODELSCOPE_API_TOKEN .
#   docker run --gpus all -p 8000:8000 qa
ARG BASE_IMAGE=vllm/vllm-openai:v0.25.0
FROM ${BASE_IMAGE}

WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# the serving set only (requirements.txt); every package the base image has keeps its version
COPY requirements.txt ./
COPY scripts/ scripts/
RUN bash scripts/image_install.sh

# the model is fetched at build time (network on); the token is a build secret, never a layer
ARG MODEL_ID=Qwen/Qwen2.5-0.5B-Instruct
ARG MODEL_REVISION=master
# another ModelScope-compatible hub for the download (a mirror; scripts/image_check.sh's
# loopback hub); empty: the SDK's default. A build argument only, not kept in the image.
ARG MODELSCOPE_ENDPOINT=
COPY download_model.py ./
COPY qaserve/ qaserve/
RUN --mount=type=secret,id=modelscope_token,required=false \
    bash scripts/image_download.sh "$MODEL_ID" "$MODEL_REVISION"

COPY . .
# the server resolves the download of MODEL_ID under ./model; nothing at run time needs the network.
# ENGINE=vllm: the image's vLLM serves, or the start fails loudly (no silent fallback to the
# slow transformers engine); DEMO_MODEL_FALLBACK=0: a missing model is an error, never the
# bundled demo model. `docker run -e ENGINE=auto ...` overrides either.
ENV MODEL_ID=${MODEL_ID} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ENGINE=vllm DEMO_MODEL_FALLBACK=0
# vLLM's model inspection needs no GPU: cached now, not at each new container's first start
# (best effort: a vLLM that cannot do it here leaves it to the first start, as before)
RUN timeout 300 python3 -m qaserve.modeltools.vllm_cache || echo "vLLM's model info not cached"
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=4)"
ENTRYPOINT []
CMD ["bash", "run_model.sh"]
