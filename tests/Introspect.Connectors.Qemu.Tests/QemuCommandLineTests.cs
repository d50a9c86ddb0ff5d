namespace Introspect.Connectors.Qemu.Tests;

public sealed class QemuCommandLineTests
{
    [Test]
    public void A_live_guests_command_line_gives_name_ram_machine_backend_and_qmp_sockets()
    {
        // As LiveGuest starts QEMU (and as /proc/PID/cmdline shows it).
        string[] arguments =
        [
            "/usr/bin/qemu-system-x86_64", "-name", "guest=web1,process=web1-qemu,debug-threads=on", "-machine", "pc", "-m", "128M",
            "-chardev", "socket,id=console,path=/run/c.sock,server=on,wait=off", "-serial", "chardev:console",
            "-qmp", "unix:/run/q.sock,server=on,wait=off",
            "-chardev", "socket,id=mon1,path=/run/m.sock,server=on,wait=off", "-mon", "chardev=mon1,mode=control",
            "-object", "memory-backend-file,id=ram,size=256M,mem-path=/dev/shm/web1,share=on", "-machine", "memory-backend=ram",
        ];
        var line = QemuCommandLine.Parse(arguments);
        Assert.That(line.GuestName, Is.EqualTo("web1"));
        Assert.That(line.ProcessName, Is.EqualTo("web1-qemu"));
        Assert.That(line.MachineType, Is.EqualTo("pc"));
        Assert.That(line.RamBytes, Is.EqualTo(128UL << 20));
        Assert.That(line.RamBackend, Is.EqualTo(new MemoryBackend("memory-backend-file", "ram", 256UL << 20, "/dev/shm/web1", true)));
        Assert.That(line.EffectiveRamBytes, Is.EqualTo(256UL << 20), "the backend's size is the RAM's");
        Assert.That(line.QmpSockets, Is.EqualTo(new[] { "/run/q.sock", "/run/m.sock" }));
        Assert.That(QemuCommandLine.IsQemu(arguments, null), Is.True);
    }

    [Test]
    public void Bare_name_double_dash_options_equals_forms_and_defaults()
    {
        var line = QemuCommandLine.Parse(["qemu-system-x86_64", "--name=vm2", "-M", "q35,max-ram-below-4g=1G", "-m", "size=4G,slots=2,maxmem=8G"]);
        Assert.That(line.GuestName, Is.EqualTo("vm2"));
        Assert.That(line.MachineType, Is.EqualTo("q35"));
        Assert.That(line.MaxRamBelow4G, Is.EqualTo(1UL << 30));
        Assert.That(line.RamBytes, Is.EqualTo(4UL << 30));
        var plain = QemuCommandLine.Parse(["qemu-system-x86_64", "-m", "512"]);
        Assert.That(plain.RamBytes, Is.EqualTo(512UL << 20), "-m without a suffix is in MiB");
        Assert.That(plain.GuestName, Is.Null);
        Assert.That(QemuCommandLine.Parse(["qemu-system-x86_64"]).EffectiveRamBytes, Is.EqualTo(QemuCommandLine.DefaultRamBytes));
    }

    [Test]
    public void Doubled_commas_are_literal_commas()
    {
        var (bare, keys) = QemuCommandLine.SplitOptions("socket,id=x,path=/tmp/a,,b.sock");
        Assert.That(bare, Is.EqualTo("socket"));
        Assert.That(keys["path"], Is.EqualTo("/tmp/a,b.sock"));
    }

    [Test]
    public void Other_programs_are_not_qemu()
    {
        Assert.That(QemuCommandLine.IsQemu(["/bin/bash", "-c", "qemu-system-x86_64"], "/bin/bash"), Is.False);
        Assert.That(QemuCommandLine.IsQemu([], null), Is.False);
        Assert.That(QemuCommandLine.IsQemu(null, "/usr/bin/qemu-system-aarch64"), Is.True);
    }

    [TestCase("-m", "lots")]
    [TestCase("-m", "12Q")]
    [TestCase("-m", "99999999999999999999")]
    [TestCase("-m", "17179869184T")]
    [TestCase("-object", "memory-backend-ram,id=r,size=-5")]
    public void Sizes_qemu_would_refuse_are_refused_naming_the_option(string option, string value) =>
        Assert.That(() => QemuCommandLine.Parse(["qemu-system-x86_64", option, value]),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("QEMU command line, option " + option));

    [Test]
    public void A_truncated_command_line_is_read_as_far_as_it_goes()
    {
        var line = QemuCommandLine.Parse(["qemu-system-x86_64", "-name", "vm", "-m"]);
        Assert.That(line.GuestName, Is.EqualTo("vm"));
        Assert.That(line.RamBytes, Is.Null);
    }
}
