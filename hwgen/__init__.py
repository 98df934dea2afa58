"""srmac hardware generators (Amaranth 0.5): SR MAC circuits, Verilog export, cocotb regression.

* :mod:`hwgen.mac` -- ``MacUnit(cfg, rand="port"|"prng", seed=0, pipeline=0, datapath=None)``,
  the streaming MAC;
* :mod:`hwgen.dual` -- ``DualAccumulateStep``, the close/far one-cycle accumulation
  ``round(z + a*b)`` (the default), with :mod:`hwgen.close` and :mod:`hwgen.far`;
* :mod:`hwgen.datapath` -- ``AccumulateStep``, the single-path one (every configuration);
* :mod:`hwgen.product` -- the product, normalised before the pipeline register;
* sub-blocks: :mod:`hwgen.unpack`, :mod:`hwgen.lzc`, :mod:`hwgen.shift`,
  :mod:`hwgen.rounding`, :mod:`hwgen.pack`, :mod:`hwgen.prng`;
* :mod:`hwgen.formal` -- ``srmac prove``: the dual loop proven equal to the single one;
* :mod:`hwgen.export` -- ``to_verilog(unit, name)`` and ``sidecar(unit, name)``;
* :mod:`hwgen.cli` -- ``srmac verilog`` and ``srmac regress``;
* :mod:`hwgen.vectors`, :mod:`hwgen.regress` -- stimulus and the cocotb/Icarus matrix.

See docs/hardware.md. Importing this package does not import Amaranth.
"""
