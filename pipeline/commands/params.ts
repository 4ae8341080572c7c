// `params`: each stage's parameters, with where each value comes from.
import { type Command, say } from "./command.ts";
import { JSON_OPTION, PARAMETER_OPTIONS } from "./options.ts";

export const params: Command = {
  name: "params",
  synopsis: "[stage…]",
  help: "each stage's parameters: value, where it comes from, type and meaning",
  options: { ...PARAMETER_OPTIONS, ...JSON_OPTION },
  async run(c) {
    const engine = await c.engine();
    const names = c.args.length ? c.args.flatMap((t) => engine.graph.resolve(t)) : engine.graph.order;
    const table = Object.fromEntries(names.map((name) => {
      const node = engine.graph.nodes.get(name)!;
      return [name, {
        doc: node.def.doc,
        params: Object.fromEntries(
          Object.entries(node.def.params).map((
            [k, spec],
          ) => [k, { value: node.params[k], source: node.sources[k], type: spec.type, doc: spec.doc }]),
        ),
      }];
    }));
    if (c.values.json) return say(JSON.stringify(table, null, 2));
    for (const [name, { doc, params }] of Object.entries(table)) {
      console.log(`${name}: ${doc}`);
      for (const [k, p] of Object.entries(params)) {
        console.log(`  ${k} = ${JSON.stringify(p.value)}  [${p.source}]  (${p.type}) ${p.doc}`);
      }
    }
    return 0;
  },
};
