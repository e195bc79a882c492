namespace BabyNames.Tests;
