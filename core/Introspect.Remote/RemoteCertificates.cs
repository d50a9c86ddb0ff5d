using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Introspect.Remote;

/// <summary>Loads the certificates the server and the connector take from files: PKCS#12 (<c>.pfx</c>/<c>.p12</c>) or PEM.</summary>
public static class RemoteCertificates
{
    /// <summary>A certificate with its private key: a PKCS#12 file, or a PEM certificate with its key in <paramref name="keyPath"/> or in the same file.</summary>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is not a certificate with a private key; the message names it.</exception>
    public static X509Certificate2 LoadWithKey(string path, string? keyPath = null, string? password = null)
    {
        Require(path);
        if (keyPath is not null)
            Require(keyPath);
        try
        {
            X509Certificate2 certificate;
            if (IsPem(path))
            {
                certificate = password is null
                    ? X509Certificate2.CreateFromPemFile(path, keyPath)
                    : X509Certificate2.CreateFromEncryptedPemFile(path, password, keyPath);
            }
            else
            {
                certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password);
            }
            if (!certificate.HasPrivateKey)
            {
                certificate.Dispose();
                throw new InvalidDataException($"{path}: the certificate has no private key; give a PKCS#12 file with the key, or the PEM key file beside it.");
            }
            return certificate;
        }
        catch (CryptographicException e)
        {
            throw new InvalidDataException($"{path}{(keyPath is null ? "" : $" (key {keyPath})")}: not a certificate with a private key that can be read: {e.Message}", e);
        }
    }

    /// <summary>Certificates to trust: every certificate of a PEM file, or one DER certificate.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file holds no certificate.</exception>
    public static X509Certificate2Collection LoadTrusted(string path)
    {
        Require(path);
        var collection = new X509Certificate2Collection();
        try
        {
            if (IsPem(path))
                collection.ImportFromPemFile(path);
            else
                collection.Add(X509CertificateLoader.LoadCertificateFromFile(path));
        }
        catch (CryptographicException e)
        {
            throw new InvalidDataException($"{path}: not a certificate file (PEM or DER): {e.Message}", e);
        }
        if (collection.Count == 0)
            throw new InvalidDataException($"{path}: holds no certificate; expected PEM '-----BEGIN CERTIFICATE-----' blocks or one DER certificate.");
        return collection;
    }

    private static bool IsPem(string path)
    {
        Span<byte> start = stackalloc byte[64];
        using var file = File.OpenRead(path);
        int read = file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
        return System.Text.Encoding.ASCII.GetString(start[..read]).Contains("-----BEGIN", StringComparison.Ordinal);
    }

    private static void Require(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such file.", path);
    }
}
