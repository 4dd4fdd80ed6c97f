// Generated fixtures for ChatTemplateTests. Template sources are public model data
// (tokenizer.chat_template of each model). Expected strings for SmolLM2 and Qwen marked
// "llama.cpp reference" come from llama.cpp's Jinja engine; all others were rendered with
// Python jinja2 3.1.6 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, HF's tojson,
// raise_exception and strftime_now), i.e. what HF transformers' apply_chat_template produces.

enum ChatTemplateFixtures {
    /// SmolLM2-135M-Instruct
    static let smollm2Template = ##"""
{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}
"""##

    /// Qwen2.5-Coder-Instruct
    static let qwenTemplate = ##"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}

"""##

    /// Meta-Llama-3-8B-Instruct
    static let llama3Template = ##"""
{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>

'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>

' }}{% endif %}
"""##

    /// Llama-3.1-8B-Instruct
    static let llama31Template = ##"""
{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}

"""##

    /// Llama-3.2-3B-Instruct
    static let llama32Template = ##"""
{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}

"""##

    /// gemma-3-it
    static let gemma3Template = ##"""
{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}

"""##

    static let smollm2ReferenceCases = ##"""
[
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "system",
    "content": "You translate."
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": "le chat"
   },
   {
    "role": "user",
    "content": "dog"
   },
   {
    "role": "assistant",
    "content": "le chien"
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou translate.<|im_end|>\n<|im_start|>user\nchat<|im_end|>\n<|im_start|>assistant\nle chat<|im_end|>\n<|im_start|>user\ndog<|im_end|>\n<|im_start|>assistant\nle chien<|im_end|>\n<|im_start|>user\nÜnïcödé 🤗\nnew line<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n  leading and trailing spaces  <|im_end|>\n<|im_start|>assistant\n"
 }
]
"""##

    static let qwenReferenceCases = ##"""
[
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "system",
    "content": "You translate."
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": "le chat"
   },
   {
    "role": "user",
    "content": "dog"
   },
   {
    "role": "assistant",
    "content": "le chien"
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou translate.<|im_end|>\n<|im_start|>user\nchat<|im_end|>\n<|im_start|>assistant\nle chat<|im_end|>\n<|im_start|>user\ndog<|im_end|>\n<|im_start|>assistant\nle chien<|im_end|>\n<|im_start|>user\nÜnïcödé 🤗\nnew line<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "llama.cpp reference",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n  leading and trailing spaces  <|im_end|>\n<|im_start|>assistant\n"
 }
]
"""##

    static let qwenCases = ##"""
[
 {
  "label": "tools, single user turn",
  "messages": [
   {
    "role": "user",
    "content": "What's the weather in Paris?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    },
    {
     "type": "function",
     "function": {
      "name": "calc",
      "description": "Evaluate \"math\" <expr> & more",
      "parameters": {
       "type": "object",
       "properties": {
        "expr": {
         "type": "string"
        }
       },
       "required": [
        "expr"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather in a city – e.g. São Paulo\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"], \"default\": null}, \"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 7.5}, \"verbose\": {\"type\": \"boolean\", \"default\": false}}, \"required\": [\"city\"]}}}\n{\"type\": \"function\", \"function\": {\"name\": \"calc\", \"description\": \"Evaluate \\\"math\\\" <expr> & more\", \"parameters\": {\"type\": \"object\", \"properties\": {\"expr\": {\"type\": \"string\"}}, \"required\": [\"expr\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "tools with system message",
  "messages": [
   {
    "role": "system",
    "content": "You are a weather bot."
   },
   {
    "role": "user",
    "content": "Weather?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are a weather bot.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather in a city – e.g. São Paulo\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"], \"default\": null}, \"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 7.5}, \"verbose\": {\"type\": \"boolean\", \"default\": false}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "tool call round trip",
  "messages": [
   {
    "role": "user",
    "content": "Weather in Paris and Rome?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Rome",
        "unit": "celsius"
       }
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "{\"temp\": 21}"
   },
   {
    "role": "tool",
    "content": "{\"temp\": 25}"
   },
   {
    "role": "assistant",
    "content": "Paris 21°C, Rome 25°C."
   },
   {
    "role": "user",
    "content": "Thanks"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather in a city – e.g. São Paulo\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"], \"default\": null}, \"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 7.5}, \"verbose\": {\"type\": \"boolean\", \"default\": false}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": \"celsius\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n<tool_response>\n{\"temp\": 25}\n</tool_response><|im_end|>\n<|im_start|>assistant\nParis 21°C, Rome 25°C.<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "assistant content plus tool call, arguments as JSON string, no tools",
  "messages": [
   {
    "role": "system",
    "content": "sys"
   },
   {
    "role": "user",
    "content": "compute"
   },
   {
    "role": "assistant",
    "content": "Let me compute.",
    "tool_calls": [
     {
      "name": "calc",
      "arguments": "{\"expr\": \"1+1\"}"
     }
    ]
   },
   {
    "role": "tool",
    "content": "2"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\ncompute<|im_end|>\n<|im_start|>assistant\nLet me compute.\n<tool_call>\n{\"name\": \"calc\", \"arguments\": \"{\\\"expr\\\": \\\"1+1\\\"}\"}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n2\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "system message in the middle",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "system",
    "content": "mid"
   },
   {
    "role": "user",
    "content": "b"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>system\nmid<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n"
 },
 {
  "label": "no generation prompt",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b"
   }
  ],
  "add_generation_prompt": false,
  "bos_token": "",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
 }
]
"""##

    static let llama3Cases = ##"""
[
 {
  "label": "basic 0",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 1",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 2",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 3",
  "messages": [
   {
    "role": "system",
    "content": "  You translate.\n"
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": " le chat "
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line\t\"quoted\" \\ back"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou translate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nchat<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nle chat<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 🤗\nnew line\t\"quoted\" \\ back<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 4",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nleading and trailing spaces<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "no generation prompt",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": false,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
 }
]
"""##

    static let llama31Cases = ##"""
[
 {
  "label": "basic 0",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 1",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 2",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 3",
  "messages": [
   {
    "role": "system",
    "content": "  You translate.\n"
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": " le chat "
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line\t\"quoted\" \\ back"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou translate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nchat<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nle chat<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 🤗\nnew line\t\"quoted\" \\ back<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 4",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nleading and trailing spaces<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "tools in user message",
  "messages": [
   {
    "role": "system",
    "content": "Use tools."
   },
   {
    "role": "user",
    "content": "  Weather in Paris?  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    },
    {
     "type": "function",
     "function": {
      "name": "calc",
      "description": "Evaluate \"math\" <expr> & more",
      "parameters": {
       "type": "object",
       "properties": {
        "expr": {
         "type": "string"
        }
       },
       "required": [
        "expr"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nUse tools.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the current weather in a city – e.g. São Paulo\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\",\n                    \"description\": \"City name\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"celsius\",\n                        \"fahrenheit\"\n                    ],\n                    \"default\": null\n                },\n                \"days\": {\n                    \"type\": \"integer\",\n                    \"minimum\": 1,\n                    \"maximum\": 7.5\n                },\n                \"verbose\": {\n                    \"type\": \"boolean\",\n                    \"default\": false\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"calc\",\n        \"description\": \"Evaluate \\\"math\\\" <expr> & more\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"expr\": {\n                    \"type\": \"string\"\n                }\n            },\n            \"required\": [\n                \"expr\"\n            ]\n        }\n    }\n}\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "tools in system message, date_string",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    }
   ],
   "tools_in_user_message": false,
   "date_string": "01 Jan 2025"
  },
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\nYou have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the current weather in a city – e.g. São Paulo\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\",\n                    \"description\": \"City name\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"celsius\",\n                        \"fahrenheit\"\n                    ],\n                    \"default\": null\n                },\n                \"days\": {\n                    \"type\": \"integer\",\n                    \"minimum\": 1,\n                    \"maximum\": 7.5\n                },\n                \"verbose\": {\n                    \"type\": \"boolean\",\n                    \"default\": false\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "builtin tools with a builtin call",
  "messages": [
   {
    "role": "system",
    "content": "sys"
   },
   {
    "role": "user",
    "content": "Search for llamas"
   },
   {
    "role": "assistant",
    "tool_calls": [
     {
      "function": {
       "name": "brave_search",
       "arguments": {
        "query": "llamas",
        "lang": "en"
       }
      }
     }
    ]
   },
   {
    "role": "ipython",
    "content": {
     "results": [
      "a",
      "b"
     ]
    }
   },
   {
    "role": "assistant",
    "content": "Found."
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "builtin_tools": [
    "brave_search",
    "wolfram_alpha",
    "code_interpreter"
   ]
  },
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools: brave_search, wolfram_alpha\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nSearch for llamas<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>brave_search.call(query=\"llamas\", lang=\"en\")<|eom_id|><|start_header_id|>ipython<|end_header_id|>\n\n{\"results\": [\"a\", \"b\"]}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nFound.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "custom tool call round trip",
  "messages": [
   {
    "role": "user",
    "content": "Weather in Paris?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris"
       }
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "21 degrees"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "get_weather",
      "description": "Get the current weather in a city – e.g. São Paulo",
      "parameters": {
       "type": "object",
       "properties": {
        "city": {
         "type": "string",
         "description": "City name"
        },
        "unit": {
         "type": "string",
         "enum": [
          "celsius",
          "fahrenheit"
         ],
         "default": null
        },
        "days": {
         "type": "integer",
         "minimum": 1,
         "maximum": 7.5
        },
        "verbose": {
         "type": "boolean",
         "default": false
        }
       },
       "required": [
        "city"
       ]
      }
     }
    }
   ],
   "tools_in_user_message": false
  },
  "fixed_time": null,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the current weather in a city – e.g. São Paulo\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\",\n                    \"description\": \"City name\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"celsius\",\n                        \"fahrenheit\"\n                    ],\n                    \"default\": null\n                },\n                \"days\": {\n                    \"type\": \"integer\",\n                    \"minimum\": 1,\n                    \"maximum\": 7.5\n                },\n                \"verbose\": {\n                    \"type\": \"boolean\",\n                    \"default\": false\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"21 degrees\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "two tool calls raise",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "assistant",
    "tool_calls": [
     {
      "function": {
       "name": "a",
       "arguments": {}
      }
     },
     {
      "function": {
       "name": "b",
       "arguments": {}
      }
     }
    ]
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "raises": "This model only supports single tool-calls at once!"
 },
 {
  "label": "tools but no user message raises",
  "messages": [
   {
    "role": "system",
    "content": "only system"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "calc",
      "description": "Evaluate \"math\" <expr> & more",
      "parameters": {
       "type": "object",
       "properties": {
        "expr": {
         "type": "string"
        }
       },
       "required": [
        "expr"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": null,
  "raises": "Cannot put tools in the first user message when there's no first user message!"
 }
]
"""##

    static let llama32Cases = ##"""
[
 {
  "label": "basic 0",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 1",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 2",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 3",
  "messages": [
   {
    "role": "system",
    "content": "  You translate.\n"
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": " le chat "
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line\t\"quoted\" \\ back"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\nYou translate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nchat<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nle chat<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 🤗\nnew line\t\"quoted\" \\ back<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "basic 4",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {},
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nleading and trailing spaces<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "tools in user message",
  "messages": [
   {
    "role": "user",
    "content": "Compute 2*21"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "calc",
      "description": "Evaluate \"math\" <expr> & more",
      "parameters": {
       "type": "object",
       "properties": {
        "expr": {
         "type": "string"
        }
       },
       "required": [
        "expr"
       ]
      }
     }
    }
   ]
  },
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"calc\",\n        \"description\": \"Evaluate \\\"math\\\" <expr> & more\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"expr\": {\n                    \"type\": \"string\"\n                }\n            },\n            \"required\": [\n                \"expr\"\n            ]\n        }\n    }\n}\n\nCompute 2*21<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "tools in system message with call and response",
  "messages": [
   {
    "role": "system",
    "content": "You are helpful."
   },
   {
    "role": "user",
    "content": "Compute 2*21"
   },
   {
    "role": "assistant",
    "tool_calls": [
     {
      "function": {
       "name": "calc",
       "arguments": {
        "expr": "2*21"
       }
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": [
     {
      "value": 42
     }
    ]
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "tools": [
    {
     "type": "function",
     "function": {
      "name": "calc",
      "description": "Evaluate \"math\" <expr> & more",
      "parameters": {
       "type": "object",
       "properties": {
        "expr": {
         "type": "string"
        }
       },
       "required": [
        "expr"
       ]
      }
     }
    }
   ],
   "tools_in_user_message": false
  },
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 14 Mar 2025\n\nYou have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"calc\",\n        \"description\": \"Evaluate \\\"math\\\" <expr> & more\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"expr\": {\n                    \"type\": \"string\"\n                }\n            },\n            \"required\": [\n                \"expr\"\n            ]\n        }\n    }\n}\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCompute 2*21<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"calc\", \"parameters\": {\"expr\": \"2*21\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n[{\"value\": 42}]<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 },
 {
  "label": "explicit date_string",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<|begin_of_text|>",
  "eos_token": "",
  "extra": {
   "date_string": "26 Jul 2024"
  },
  "fixed_time": 1741910400,
  "expected": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 }
]
"""##

    static let gemma3Cases = ##"""
[
 {
  "label": "basic 0",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "basic 1",
  "messages": [
   {
    "role": "system",
    "content": "Be brief."
   },
   {
    "role": "user",
    "content": "Hello"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "basic 2",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "basic 3",
  "messages": [
   {
    "role": "system",
    "content": "  You translate.\n"
   },
   {
    "role": "user",
    "content": "chat"
   },
   {
    "role": "assistant",
    "content": " le chat "
   },
   {
    "role": "user",
    "content": "Ünïcödé 🤗\nnew line\t\"quoted\" \\ back"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\n  You translate.\n\n\nchat<end_of_turn>\n<start_of_turn>model\nle chat<end_of_turn>\n<start_of_turn>user\nÜnïcödé 🤗\nnew line\t\"quoted\" \\ back<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "basic 4",
  "messages": [
   {
    "role": "user",
    "content": "  leading and trailing spaces  "
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\nleading and trailing spaces<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "list content with image and system parts",
  "messages": [
   {
    "role": "system",
    "content": [
     {
      "type": "text",
      "text": " Describe images. "
     }
    ]
   },
   {
    "role": "user",
    "content": [
     {
      "type": "image"
     },
     {
      "type": "text",
      "text": "  What is this?  "
     }
    ]
   },
   {
    "role": "assistant",
    "content": [
     {
      "type": "text",
      "text": "A cat."
     }
    ]
   },
   {
    "role": "user",
    "content": "Sure?"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\n Describe images. \n\n<start_of_image>What is this?<end_of_turn>\n<start_of_turn>model\nA cat.<end_of_turn>\n<start_of_turn>user\nSure?<end_of_turn>\n<start_of_turn>model\n"
 },
 {
  "label": "roles must alternate",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "user",
    "content": "b"
   }
  ],
  "add_generation_prompt": true,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "raises": "Conversation roles must alternate user/assistant/user/assistant/..."
 },
 {
  "label": "no generation prompt",
  "messages": [
   {
    "role": "user",
    "content": "What is 2+2?"
   },
   {
    "role": "assistant",
    "content": "4"
   },
   {
    "role": "user",
    "content": "And 3+3?"
   }
  ],
  "add_generation_prompt": false,
  "bos_token": "<bos>",
  "eos_token": "",
  "extra": {},
  "fixed_time": null,
  "expected": "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n"
 }
]
"""##

}
