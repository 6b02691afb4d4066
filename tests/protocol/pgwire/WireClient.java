// A pgJDBC client of the hub's wire endpoint, run by tests/protocol/pgwire/test_clients.py:
// java WireClient.java URL USER PASSWORD — prints one JSON-ish line per step, read by the test.
import java.sql.*;
import java.util.*;

public class WireClient {
    static String rows(ResultSet rs) throws SQLException {
        StringBuilder b = new StringBuilder("[");
        int n = rs.getMetaData().getColumnCount();
        boolean first = true;
        while (rs.next()) {
            if (!first) b.append(",");
            first = false;
            b.append("[");
            for (int i = 1; i <= n; i++) {
                if (i > 1) b.append(",");
                Object v = rs.getObject(i);
                if (v == null) b.append("null");
                else if (v instanceof Number) b.append(v.toString());
                else b.append('"').append(v.toString().replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
            }
            b.append("]");
        }
        return b.append("]").toString();
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        try (Connection c = DriverManager.getConnection(args[0], p)) {
            DatabaseMetaData md = c.getMetaData();
            StringBuilder tables = new StringBuilder("[");
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                boolean first = true;
                while (rs.next()) {
                    if (!first) tables.append(",");
                    first = false;
                    tables.append('"').append(rs.getString("TABLE_SCHEM")).append(".")
                          .append(rs.getString("TABLE_NAME")).append('"');
                }
            }
            System.out.println("TABLES " + tables.append("]"));
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery(args[3])) {
                System.out.println("QUERY " + rows(rs));
            }
            try (PreparedStatement ps = c.prepareStatement(args[4])) {
                ps.setString(1, args[5]);
                try (ResultSet rs = ps.executeQuery()) {
                    System.out.println("PREPARED " + rows(rs));
                }
            }
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SHOW zhongshu.receipt")) {
                rs.next();
                System.out.println("RECEIPT " + rs.getString(1));
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery(args[6]);
                System.out.println("REFUSAL none");
            } catch (SQLException e) {
                System.out.println("REFUSAL " + e.getSQLState());
            }
        }
    }
}
