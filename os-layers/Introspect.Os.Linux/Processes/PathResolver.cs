using System.Text;
using Introspect.Core.Memory;
using Introspect.Os.Linux.Types;

namespace Introspect.Os.Linux.Processes;

/// <summary>Turns a <c>struct path</c> (a mount and a dentry) into the text <c>d_path</c> would give.</summary>
/// <remarks>
/// Walks <c>d_parent</c> up to the root of the dentry's mount, then crosses to the mount point in the parent mount
/// (<c>mount.mnt_mountpoint</c>, <c>mnt_parent</c>), until a mount that is its own parent: the namespace's root.
/// A dentry that is neither hashed nor a root was unlinked, and gets <c> (deleted)</c> as <c>/proc</c> writes it.
/// Bounded by <see cref="LinuxLimits.MaxPathComponents"/> and <see cref="LinuxLimits.MaxPathBytes"/>; a cycle or an
/// unreadable link ends the walk with null.
/// </remarks>
internal sealed class PathResolver(KernelReader reader, LinuxStructures s)
{
    private const int MaxNameBytes = 255;

    /// <summary>The path of a <c>struct file</c>.</summary>
    public string? FilePath(ulong file)
    {
        if (file == 0)
            return null;
        ulong mount = reader.ReadPointerOrZero(KernelReader.Field(file, s.FilePathMount));
        ulong dentry = reader.ReadPointerOrZero(KernelReader.Field(file, s.FilePathDentry));
        return dentry == 0 ? null : Path(mount, dentry);
    }

    /// <summary>The path of a (vfsmount, dentry) pair.</summary>
    public string? Path(ulong vfsMount, ulong dentry)
    {
        var components = new List<string>();
        int bytes = 0;
        ulong original = dentry;
        bool canCrossMounts = vfsMount != 0 && s.MountMnt >= 0 && s.MountParent >= 0 && s.MountMountpoint >= 0 && s.VfsMountRoot >= 0;
        ulong mount = canCrossMounts ? KernelReader.Container(vfsMount, s.MountMnt) : 0;
        for (int step = 0; ; step++)
        {
            if (step > LinuxLimits.MaxPathComponents || bytes > LinuxLimits.MaxPathBytes)
                return null;
            if (canCrossMounts)
            {
                ulong mountRoot = reader.ReadPointerOrZero(KernelReader.Field(KernelReader.Field(mount, s.MountMnt), s.VfsMountRoot));
                if (dentry == mountRoot)
                {
                    ulong parentMount = reader.ReadPointerOrZero(KernelReader.Field(mount, s.MountParent));
                    if (parentMount == 0 || parentMount == mount)
                        break;
                    ulong mountPoint = reader.ReadPointerOrZero(KernelReader.Field(mount, s.MountMountpoint));
                    if (mountPoint == 0)
                        return null;
                    dentry = mountPoint;
                    mount = parentMount;
                    continue;
                }
            }
            if (!reader.TryReadPointer(KernelReader.Field(dentry, s.DentryParent), out ulong parent) || parent == 0)
                return null;
            if (parent == dentry)
                break; // the root of a file system that is not mounted where we stand (or no mount was known)
            var name = Name(dentry);
            if (name is null)
                return null;
            components.Add(name);
            bytes += name.Length + 1;
            dentry = parent;
        }

        var text = new StringBuilder(bytes + 1);
        for (int i = components.Count - 1; i >= 0; i--)
            text.Append('/').Append(components[i]);
        if (text.Length == 0)
            text.Append('/');
        if (IsUnlinked(original))
            text.Append(" (deleted)");
        return text.ToString();
    }

    /// <summary>A dentry's own name (<c>d_name</c>): length and pointer to its bytes.</summary>
    private string? Name(ulong dentry)
    {
        if (!reader.Memory.TryRead(KernelReader.Field(dentry, s.DentryNameLength), out uint length)
            || !reader.TryReadPointer(KernelReader.Field(dentry, s.DentryNamePointer), out ulong pointer) || pointer == 0)
            return null;
        if (length == 0 || length > MaxNameBytes)
            return null;
        var bytes = new byte[length];
        return reader.TryReadAll(pointer, bytes) ? Encoding.UTF8.GetString(bytes) : null;
    }

    private bool IsUnlinked(ulong dentry)
    {
        if (s.DentryHashPprev < 0 || !reader.TryReadPointer(KernelReader.Field(dentry, s.DentryHashPprev), out ulong pprev)
            || !reader.TryReadPointer(KernelReader.Field(dentry, s.DentryParent), out ulong parent))
            return false;
        return pprev == 0 && parent != dentry;
    }
}
