"""A functional Keras model as a graph of named layers, read from and written back to its config.

The subgraph strategy rewrites teachers: it inserts gates and, when it extracts a student, removes
residual branches and narrows layers. Both are edits of the model's functional config (each layer's
class, settings and the layers that feed it), rebuilt with ``Model.from_config`` and given the
teacher's weights by layer name. Only what such edits need is supported: a layer called once (no
shared layers), one output per layer, one model input; anything else is a clear error naming the layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from akd_tf.errors import InvalidInput


@dataclass
class LayerNode:
    """One layer of the graph: its config entry (``class_name``, ``config``) and the layers feeding it, in order."""

    name: str
    class_name: str
    config: dict
    inputs: list[str]


class LayerGraph:
    """The layers of a functional model in topological order, with who feeds whom; editable, then rebuilt."""

    def __init__(self, nodes: list[LayerNode], input_name: str, output_name: str, model_name: str):
        self.nodes = {node.name: node for node in nodes}
        self.order = [node.name for node in nodes]
        self.input_name, self.output_name, self.model_name = input_name, output_name, model_name
        self._bypassed: dict[str, str] = {}  # dropped layer -> the layer its readers read instead

    @classmethod
    def of_model(cls, model) -> "LayerGraph":
        """The graph of a functional ``model`` (raises :class:`InvalidInput` for a subclassed or shared-layer one)."""
        try:
            config = model.get_config()
        except NotImplementedError as exc:
            raise InvalidInput(f"model {model.name!r} is not a functional Keras model (its config cannot be read: "
                               f"{exc}); build the teacher with the functional API") from exc
        if not isinstance(config, dict) or "layers" not in config or "input_layers" not in config:
            raise InvalidInput(f"model {model.name!r} is not a functional Keras model; build it with the functional "
                               "API (keras.Model(inputs, outputs)) so its layers can be read")
        if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
            raise InvalidInput(f"model {model.name!r} has {len(config['input_layers'])} inputs and "
                               f"{len(config['output_layers'])} outputs; a teacher has one of each")
        nodes = []
        for entry in config["layers"]:
            name = entry["config"]["name"]
            inbound = entry.get("inbound_nodes") or []
            if len(inbound) > 1:
                raise InvalidInput(f"layer {name!r} is called {len(inbound)} times (a shared layer); "
                                   "each layer of a teacher to gate must be called once")
            inputs = []
            for link in inbound[0] if inbound else []:
                source, node_index, tensor_index = link[0], link[1], link[2]
                if node_index != 0 or tensor_index != 0:
                    raise InvalidInput(f"layer {name!r} reads output {tensor_index} of call {node_index} of "
                                       f"{source!r}; only single-output layers called once are supported")
                if len(link) > 3 and link[3]:
                    raise InvalidInput(f"layer {name!r} is called with arguments {link[3]}; not supported")
                inputs.append(source)
            nodes.append(LayerNode(name, entry["class_name"], copy.deepcopy(entry["config"]), inputs))
        return cls(nodes, config["input_layers"][0][0], config["output_layers"][0][0], config["name"])

    # --- reading ----------------------------------------------------------------------------------

    def node(self, name: str) -> LayerNode:
        return self.nodes[name]

    def consumers(self, name: str) -> list[str]:
        """The layers that read ``name``'s output, in topological order."""
        return [other for other in self.order if name in self.nodes[other].inputs]

    def ancestors(self, name: str) -> set[str]:
        """``name`` and every layer it depends on."""
        seen, stack = set(), [name]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.nodes[current].inputs)
        return seen

    # --- editing ----------------------------------------------------------------------------------

    def insert_after(self, source: str, consumer: str, node: LayerNode) -> None:
        """Put ``node`` (whose input is ``source``) between ``source`` and ``consumer``."""
        node.inputs = [source]
        self.nodes[node.name] = node
        self.order.insert(self.order.index(consumer), node.name)
        self.nodes[consumer].inputs = [node.name if name == source else name for name in self.nodes[consumer].inputs]

    def bypass(self, name: str, replacement: str) -> None:
        """Every reader of ``name`` (and the model's output) reads ``replacement`` instead; ``name`` is dropped.
        ``replacement`` may itself have been bypassed before (consecutive residual blocks): its own
        replacement is read then."""
        while replacement in self._bypassed:
            replacement = self._bypassed[replacement]
        self._bypassed[name] = replacement
        for other in self.order:
            node = self.nodes[other]
            node.inputs = [replacement if source == name else source for source in node.inputs]
        if self.output_name == name:
            self.output_name = replacement
        self.order.remove(name)
        del self.nodes[name]

    def prune(self) -> None:
        """Drop the layers the output no longer depends on."""
        needed = self.ancestors(self.output_name)
        for name in [name for name in self.order if name not in needed]:
            self.order.remove(name)
            del self.nodes[name]

    def to_config(self) -> dict:
        """A functional config of the graph (layers rebuilt from their settings; input shapes found anew)."""
        layers = []
        for name in self.order:
            node = self.nodes[name]
            layers.append({"class_name": node.class_name, "config": node.config, "name": name,
                           "inbound_nodes": [[[source, 0, 0, {}] for source in node.inputs]] if node.inputs else []})
        return {"name": self.model_name, "layers": layers, "input_layers": [[self.input_name, 0, 0]],
                "output_layers": [[self.output_name, 0, 0]]}
