# Reset this shell's server settings to their defaults:  . ./env_force.sh
# Generated from qaserve/settings.py by `python -m qaserve.settings_doc --write`; do not edit.
# Sets variables only: no shell options are changed, so sourcing it is safe.

export HOST='0.0.0.0'
export PORT='8000'
export BATCH_MODE='1'
export PREDICT_DEADLINE_S='300.0'
export MAX_BATCH_ITEMS='16384'
export MAX_BODY_BYTES='33554432'
unset ADMIN_TOKEN
export WARMUP='1'
export LOG_LEVEL='INFO'
unset MODEL_DIR
export MODEL_ID='Qwen/Qwen2.5-0.5B-Instruct'
export MODEL_CACHE_DIR='model'
export DEMO_MODEL_FALLBACK='1'
export SMOKE_MODEL_FALLBACK='0'
unset MODELSCOPE_API_TOKEN
unset MODELSCOPE_TOKEN
unset REPO_ID
export ENGINE='auto'
export DTYPE='auto'
export GPU_MEMORY_UTILIZATION='0.9'
export MAX_MODEL_LEN='4096'
export MAX_NUM_SEQS='512'
export MAX_NUM_BATCHED_TOKENS='32768'
export ENABLE_PREFIX_CACHING='1'
unset VLLM_QUANTIZATION
export VLLM_KV_CACHE_DTYPE='auto'
export ENFORCE_EAGER='0'
unset ASYNC_SCHEDULING
export ENABLE_SPECULATIVE_DECODING='0'
export SPEC_METHOD='ngram'
export SPEC_NUM_TOKENS='4'
unset SPEC_DRAFT_MODEL
export TENSOR_PARALLEL_SIZE='1'
export DATA_PARALLEL_SIZE='1'
export ENGINE_REPLICAS='auto'
export DECODE_AT_END='1'
export SEED='0'
export ENGINE_EXTRA_ARGS='{}'
export SYSTEM_PROMPT='你是《Programming Massively Parallel Processors》课程的助教。请用中文简洁准确地回答问题，保留关键的英文术语、函数名、代码标识符和数字。'
export CHAT_TEMPLATE='auto'
export TEMPERATURE='0.0'
export TOP_P='1.0'
export TOP_K='0'
export REPETITION_PENALTY='1.0'
export FREQUENCY_PENALTY='0.0'
export STOP_STRINGS='[]'
export MAX_NEW_TOKENS='512'
export TOKEN_BUDGETS='1'
export SHORT_MAX_NEW_TOKENS='128'
export LONG_MAX_NEW_TOKENS='256'
export CODE_MAX_NEW_TOKENS='384'
export CODE_PATTERN='代码|编写|写出|写一个|实现|伪代码|\bcode\b|implement|\bwrite\b'
export LONG_PATTERN='详细|解释|说明|比较|区别|为什么|原理|步骤|过程|分析|优缺点|explain|compare|why'
export TRIM_ANSWERS='1'
