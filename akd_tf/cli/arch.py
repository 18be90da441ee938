"""``akd-tf arch``: sample, inspect and convert architectures of a search space."""

from __future__ import annotations

import click

from akd_tf.cli.common import echo_json, parse_arch
from akd_tf.cli.options import json_option, shape_options, space_option
from akd_tf.space import get_space


@click.group()
def arch():
    """Sample, inspect and convert architectures of a search space."""


@arch.command("space")
@space_option
@json_option
def arch_space(space_name, as_json):
    """Describe a search space: skeleton, decisions per block, size (token lists and the distinct networks
    they build) and encoding widths."""
    from akd_tf.canonical import count_networks
    from akd_tf.tables import format_table

    space = get_space(space_name)
    rows = space.skeleton_rows()
    networks = count_networks(space)
    if as_json:
        echo_json({**space.summary(), "networks": networks, "skeleton": rows})
        return
    click.echo(format_table(rows, list(rows[0]), right_aligned=["block", "stride", "filters", "base layers"]))
    click.echo(f"{space.name} (version {space.version}): {space.num_decisions} decisions, one-hot width "
               f"{space.onehot_width}, {space.size:.3e} architectures building {networks:.3e} distinct networks "
               f"({networks:,}), inputs {space.min_resolution}..{space.max_resolution} px")


@arch.command("sample")
@click.option("--n", default=1, show_default=True, type=click.IntRange(min=1), help="How many architectures.")
@click.option("--seed", default=None, type=int, help="Random seed; the same seed prints the same list.")
@space_option
def arch_sample(n, seed, space_name):
    """Print N uniformly sampled architectures, one canonical string per line."""
    for a in get_space(space_name).sample_many(n, seed):
        click.echo(a.to_string())


@arch.command("show")
@click.argument("arch_text", metavar="ARCH")
@space_option
@shape_options
@json_option
def arch_show(arch_text, space_name, resolution, channels, classes, as_json):
    """Show ARCH block by block with output shapes, parameters and multiply-adds."""
    from akd_tf.plan import block_rows, plan_network
    from akd_tf.tables import format_table

    a = parse_arch(space_name, arch_text)
    plan = plan_network(a, (resolution, resolution, channels), classes)
    rows = block_rows(plan)
    if as_json:
        echo_json({"arch": a.to_string(), "space": space_name, "input_shape": list(plan.input_shape),
                   "classes": classes, "params": plan.params, "macs": plan.macs, "blocks": rows})
        return
    click.echo(f"arch   {a.to_string()}")
    click.echo(f"input  {resolution}x{resolution}x{channels}, {classes} classes")
    click.echo(format_table(rows, ["block", "op", "kernel", "se", "skip", "filters", "layers", "output",
                                   "params", "macs"], right_aligned=["kernel", "filters", "layers", "params", "macs"]))
    click.echo(f"total  {plan.params:,} params, {plan.macs / 1e6:.2f} M MACs")


@arch.command("canonical")
@click.argument("arch_text", metavar="ARCH")
@space_option
def arch_canonical(arch_text, space_name):
    """Print the canonical form of ARCH: of all architectures that build the same network (the same layers),
    the one with the least tokens. Two architectures are the same network exactly when this prints the same
    string for both; a search trains each network once."""
    from akd_tf.canonical import canonical_arch

    click.echo(canonical_arch(parse_arch(space_name, arch_text)).to_string())


@arch.command("encode")
@click.argument("arch_text", metavar="ARCH")
@click.option("--onehot", is_flag=True, help="Print the one-hot vector (0/1 digits) instead of tokens.")
@space_option
def arch_encode(arch_text, onehot, space_name):
    """Print the tokens (comma-separated ints) of ARCH, or its one-hot vector."""
    a = parse_arch(space_name, arch_text)
    if onehot:
        click.echo("".join(str(int(v)) for v in a.onehot()))
    else:
        click.echo(",".join(map(str, a.tokens)))


@arch.command("decode")
@click.argument("tokens")
@space_option
def arch_decode(tokens, space_name):
    """Print the canonical string of TOKENS (comma-separated ints, or a one-hot string of 0/1)."""
    try:
        a = get_space(space_name).decode_text(tokens)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TOKENS") from exc
    click.echo(a.to_string())
