import * as pulumi from "@pulumi/pulumi";

/**
 * A minimal dynamic resource for proving the engine on the bed: a file whose content is its input.
 * It lives with the tests; warmstack's own resources are in infra/.
 */
interface MarkerInputs {
  path: string;
  content: string;
}

const markerProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: MarkerInputs) {
    require("node:fs").writeFileSync(inputs.path, inputs.content);
    return { id: inputs.path, outs: inputs };
  },
  async diff(_id: string, olds: MarkerInputs, news: MarkerInputs) {
    return {
      changes: olds.content !== news.content || olds.path !== news.path,
      replaces: olds.path !== news.path ? ["path"] : [],
    };
  },
  async update(_id: string, _olds: MarkerInputs, news: MarkerInputs) {
    require("node:fs").writeFileSync(news.path, news.content);
    return { outs: news };
  },
  async delete(_id: string, props: MarkerInputs) {
    require("node:fs").rmSync(props.path, { force: true });
  },
};

export class MarkerFile extends pulumi.dynamic.Resource {
  declare public readonly content: pulumi.Output<string>;

  constructor(name: string, args: { path: pulumi.Input<string>; content: pulumi.Input<string> }) {
    super(markerProvider, name, args, {});
  }
}
