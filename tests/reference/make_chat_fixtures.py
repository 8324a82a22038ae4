#!/usr/bin/python3
"""Golden chat-template renderings for tests/test_chat.c, made with Jinja2 as transformers'
apply_chat_template renders them (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
raise_exception), from the templates of the models' tokenizer_config.json files (as quoted in
llama.cpp's tests/test-chat-template.cpp and transformers' docs).

Run by hand (CI never needs Python), with Debian's python3-jinja2:
    /usr/bin/python3 tests/reference/make_chat_fixtures.py [OUT_DIR]
Writes OUT_DIR (default tests/fixtures/chat)/<family>.json, each shaped like a
tokenizer_config.json (chat_template, bos_token, eos_token), and expected.json: for every
template and fixed conversation, the rendering with and without add_generation_prompt, or the
template's own error message.
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "chat")

TEMPLATES = {
    # teknium/OpenHermes-2.5-Mistral-7B; TowerInstruct's model card gives this ChatML format
    "chatml": ("", "<|im_end|>",
               "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    # meta-llama/Llama-2-7b-chat-hf, Llama-2-13b-chat-hf
    "llama2": ("<s>", "</s>",
               "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    # mistralai/Mistral-7B-Instruct-v0.1 / v0.2, Mixtral-8x7B-Instruct-v0.1
    "mistral": ("<s>", "</s>",
                "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
    # meta-llama/Meta-Llama-3-8B-Instruct (real newlines in the template)
    "llama3": ("<|begin_of_text|>", "<|eot_id|>",
               "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    # google/gemma-7b-it, gemma-2-2b-it
    "gemma": ("<bos>", "<eos>",
              "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"),
}

CONVERSATIONS = [
    [{"role": "user", "content": "The capital of France is"}],
    [{"role": "user", "content": "  Translate to German:\nGood morning \u3000\u00a0"}],
    [{"role": "system", "content": "You are a helpful assistant"},
     {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "  Hi there  "},
     {"role": "user", "content": "फ्रांस की राजधानी क्या है?"}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"},
     {"role": "user", "content": "Bye"}],
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
]


def raise_exception(message):
    raise TemplateError(message)


def main():
    os.makedirs(OUT, exist_ok=True)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for family, (bos, eos, text) in TEMPLATES.items():
        with open(os.path.join(OUT, family + ".json"), "w") as f:
            json.dump({"bos_token": bos, "eos_token": eos, "chat_template": text}, f, indent=2,
                      ensure_ascii=False)
            f.write("\n")
        tpl = env.from_string(text)
        for conv in CONVERSATIONS:
            for gen in (False, True):
                case = {"template": family + ".json", "messages": conv, "add_generation_prompt": gen}
                try:
                    case["expected"] = tpl.render(messages=conv, add_generation_prompt=gen,
                                                  bos_token=bos, eos_token=eos)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(len(cases), "renderings written to", OUT)


main()
