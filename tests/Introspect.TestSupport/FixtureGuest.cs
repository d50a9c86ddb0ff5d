namespace Introspect.TestSupport;

/// <summary>
/// A Linux guest that <c>tests/fixtures/build.sh</c> boots under QEMU (step <c>linux-guests</c>), as the script defines it,
/// and the files it leaves: <c>NAME.elf</c>, <c>NAME.raw</c>, <c>NAME-high.raw</c>, <c>NAME-serial.txt</c>,
/// <c>NAME-oracle.txt</c>, <c>NAME-registers.txt</c>, <c>NAME-kernel.txt</c>.
/// </summary>
/// <param name="Name">The guest's name, the prefix of its files.</param>
/// <param name="Machine">QEMU's <c>-machine</c> value.</param>
/// <param name="Cpu">QEMU's <c>-cpu</c> value.</param>
/// <param name="RamBytes">All of the guest's RAM.</param>
/// <param name="LowRamBytes">The part of it below 4 GiB, at physical 0; the rest starts at <see cref="HighRamBase"/>.</param>
/// <param name="Kaslr">Whether the kernel randomised its placement (no <c>nokaslr</c> on its command line).</param>
/// <param name="PagingLevels">4, or 5 when the kernel runs with LA57.</param>
public sealed record FixtureGuest(string Name, string Machine, string Cpu, ulong RamBytes, ulong LowRamBytes, bool Kaslr, int PagingLevels)
{
    /// <summary>Where RAM above the PCI hole starts.</summary>
    public const ulong HighRamBase = 0x1_0000_0000;

    /// <summary>The RAM from <see cref="HighRamBase"/> on; 0 for most guests.</summary>
    public ulong HighRamBytes => RamBytes - LowRamBytes;

    /// <summary>QEMU's <c>dump-guest-memory</c> with <c>paging=false</c>: RAM, video RAM and BIOS as <c>PT_LOAD</c>s, CPU notes, VMCOREINFO.</summary>
    public string Elf => TestInputs.Fixture(Name + ".elf");

    /// <summary>RAM below 4 GiB as QEMU's <c>pmemsave</c> wrote it: physical address = file offset.</summary>
    public string Raw => TestInputs.Fixture(Name + ".raw");

    /// <summary>RAM from 4 GiB on: physical address = <see cref="HighRamBase"/> + file offset. Only for a guest with <see cref="HighRamBytes"/>.</summary>
    public string HighRaw => HighRamBytes > 0
        ? TestInputs.Fixture(Name + "-high.raw")
        : throw new InvalidOperationException($"The fixture guest {Name} has no RAM above 4 GiB.");

    /// <summary>The whole serial console (kernel log, then the ground truth), without <c>\r</c>.</summary>
    public string Serial => TestInputs.Fixture(Name + "-serial.txt");

    /// <summary>The ground truth the guest printed, in sections (<see cref="GuestOracle"/>).</summary>
    public string OracleFile => TestInputs.Fixture(Name + "-oracle.txt");

    /// <summary>QEMU's <c>info registers</c> while the guest was paused for the dumps.</summary>
    public string Registers => TestInputs.Fixture(Name + "-registers.txt");

    /// <summary><c>key value</c> lines: package, release, qemu, machine, cpu, ram-bytes, low-ram-bytes, high-ram-bytes, cmdline, kaslr, paging, kernel-code.</summary>
    public string KernelFacts => TestInputs.Fixture(Name + "-kernel.txt");

    /// <summary>The ground truth, parsed.</summary>
    public GuestOracle Oracle => GuestOracle.Load(OracleFile);

    /// <summary>The name, which is what a test case shows.</summary>
    public override string ToString() => Name;
}
